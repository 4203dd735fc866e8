"""The server answers TF Serving's REST routes only (issue 21: KServe's
`POST /v2/repository/models/NAME/unload` answered 200 and unloaded a model).

KServe registers its own routes when it starts (`/`, `/metrics`, `GET /v1/models`,
`:explain`, the whole `/v2/...` API with its repository load/unload), and FastAPI adds
`/openapi.json`. `restrict` runs after that and keeps only the routes `routes.py` defines, so
whatever a KServe release adds is dropped rather than listed here by name. A catch-all route,
last, gives what TF Serving gives for anything else:

- under `/v1/`: 400 `{"error": "Malformed request: METHOD PATH"}` (TF Serving's
  HttpRestApiHandler::ProcessRequest, INVALID_ARGUMENT), also for a known path with another
  method (Starlette would answer 405);
- elsewhere: 404 (TF Serving's libevent server answers an HTML 404 page; this one keeps the
  JSON error shape so clients parse one kind of error).
"""
from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Route

from . import routes

ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})


def restrict(app: FastAPI) -> None:
    """Drop every route `routes.py` did not define, then add the catch-all at the end."""
    # Only plain routes whose endpoint routes.py defined: an included router (KServe's /v1 and
    # /v2 ones), a mount or FastAPI's docs never pass, whatever their paths.
    app.router.routes[:] = [r for r in app.router.routes if isinstance(r, Route)
                            and getattr(r.endpoint, "__module__", None) == routes.__name__]
    app.add_api_route("/{path:path}", not_tf_serving, methods=sorted(ALL_METHODS), include_in_schema=False)


async def not_tf_serving(request: Request) -> JSONResponse:
    path = request.url.path
    if path.lower().startswith("/v1/"):  # TF Serving dispatches `(?i)/v1/.*` to its REST handler
        return JSONResponse(status_code=HTTPStatus.BAD_REQUEST,
                            content={"error": f"Malformed request: {request.method} {path}"})
    return JSONResponse(status_code=HTTPStatus.NOT_FOUND, content={"error": f"Not found: {path}"})
