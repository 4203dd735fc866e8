"""TF Serving REST routes that KServe's V1 protocol lacks or shapes differently.

KServe 0.21 already serves `POST /v1/models/{name}:predict` (it calls the kserve.Model
registered under `{name}`: the default version). It has no notion of model versions or
labels, and its `GET /v1/models/{name}` answers {"name", "ready"} where TF Serving answers
the model's version status. So this router adds, with TF Serving's shapes:

    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]/metadata   signature defs
    POST /v1/models/{name}:predict                                    the default route
    POST /v1/models/{name}/versions/{v}:predict
    POST /v1/models/{name}/labels/{label}:predict
    GET  /tf-serving-rest/instance                                    {"instance_id"}: who answers

Nothing else is served (surface.py drops KServe's own routes once it has registered them).
The default route is here too, so that a model without a servable default version answers
TF Serving's 404 (`Servable not found for request: Latest(NAME)`) rather than KServe's.

Predictions on a version or label go through KServe's own V1 predict handler (decoding,
model readiness, pre/post-processing, metrics, error handlers) with that version's
registry key. The router must be included in the app before KServe registers its routes
(at ModelServer.start), so that its GET /v1/models/{name} wins.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.rest.v1_endpoints import V1Endpoints

from .predict import BadRequest
from .versions import ModelSet, ServableNotFound, UnknownLabel

log = logging.getLogger("kserve.tf_serving_rest")


def install(app: FastAPI, models: ModelSet, dataplane: DataPlane, instance_id: str = "") -> None:
    """Add the TF Serving routes, and quiet handlers for the client errors they raise.

    KServe's handlers log every 404/400 at ERROR with a traceback; deployers poll version
    status until a version appears, so those would flood the log. Starlette picks the
    handler of the most specific exception class, so these win over KServe's for our
    subclasses of its ModelNotFound / InvalidInput, with the same {"error": ...} body.
    """
    # Flat routes, not include_router: FastAPI 0.165 keeps an included router as one lazy entry,
    # and surface.restrict keeps or drops the app's routes one by one (KServe's routers whole).
    app.router.routes.extend(tf_serving_router(models, dataplane).routes)

    @app.get("/tf-serving-rest/instance")
    async def instance():
        return {"instance_id": instance_id}

    app.add_exception_handler(ServableNotFound, _client_error(HTTPStatus.NOT_FOUND))
    app.add_exception_handler(UnknownLabel, _client_error(HTTPStatus.BAD_REQUEST))
    app.add_exception_handler(BadRequest, _client_error(HTTPStatus.BAD_REQUEST))


def _client_error(status: HTTPStatus):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.debug("%s %s: %d %s", request.method, request.url.path, status, exc)
        return JSONResponse(status_code=status, content={"error": str(exc)})

    return handler


def tf_serving_router(models: ModelSet, dataplane: DataPlane) -> APIRouter:
    kserve_v1 = V1Endpoints(dataplane)
    router = APIRouter(prefix="/v1/models", tags=["TF Serving"])

    def parse_version(model_name: str, version: str) -> int:
        if not version.isdigit():
            raise ServableNotFound(f"Could not find version {version} of model {model_name}")
        return int(version)

    def status_json(model_name: str, **selector) -> dict:
        return {"model_version_status": [s.as_json() for s in models.get(model_name).status(**selector)]}

    @router.get("/{model_name}")
    async def model_status(model_name: str):
        return status_json(model_name)

    @router.get("/{model_name}/versions/{version}")
    async def version_status(model_name: str, version: str):
        return status_json(model_name, version=parse_version(model_name, version))

    @router.get("/{model_name}/labels/{label}")
    async def label_status(model_name: str, label: str):
        return status_json(model_name, label=label)

    @router.get("/{model_name}/metadata")
    async def model_metadata(model_name: str):
        return models.get(model_name).loaded().metadata()

    @router.get("/{model_name}/versions/{version}/metadata")
    async def version_metadata(model_name: str, version: str):
        return models.get(model_name).loaded(version=parse_version(model_name, version)).metadata()

    @router.get("/{model_name}/labels/{label}/metadata")
    async def label_metadata(model_name: str, label: str):
        return models.get(model_name).loaded(label=label).metadata()

    @router.post("/{model_name}:predict", response_model=None)
    async def default_predict(model_name: str, request: Request):
        try:
            versions = models.get(model_name)
        except ServableNotFound:
            raise ServableNotFound(f"Servable not found for request: Latest({model_name})") from None
        return await kserve_v1.predict(versions.registry_key(), request)

    @router.post("/{model_name}/versions/{version}:predict", response_model=None)
    async def version_predict(model_name: str, version: str, request: Request):
        versions = models.get(model_name)
        return await kserve_v1.predict(versions.registry_key(version=parse_version(model_name, version)), request)

    @router.post("/{model_name}/labels/{label}:predict", response_model=None)
    async def label_predict(model_name: str, label: str, request: Request):
        return await kserve_v1.predict(models.get(model_name).registry_key(label=label), request)

    return router
