"""The server process: KServe's ModelServer with the TF Serving routes only, a body cap and a
version poller."""
from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from fastapi import FastAPI
from kserve import ModelServer
from kserve.model_repository import ModelRepository
from kserve.model_server import app
from kserve.protocol.dataplane import DataPlane

from . import routes, surface
from .limits import RequestBodyCap
from .versions import ModelSet, ModelVersions, log


class BoundModelServer(ModelServer):
    """kserve.ModelServer listening on one interface instead of all of them.

    KServe 0.21's RESTServer hardcodes host="0.0.0.0" in the uvicorn.Config it builds inside
    start(), with no parameter to change it. start() calls setup_event_loop() after building
    that RESTServer and before serving, so that is where the bind address is set.

    The same goes for its routes: RESTServer registers KServe's own when its start coroutine
    runs (create_application), after this point and before the first request, so
    create_application is wrapped here to restrict the app to TF Serving's routes right after.
    """

    def __init__(self, host: str, **kwargs):
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self):
        rest = self._rest_server
        rest.config.host = self.host
        create_application = rest.create_application

        def create_restricted_application():
            create_application()
            surface.restrict(app)

        rest.create_application = create_restricted_application
        super().setup_event_loop()


def prepare(app_: FastAPI, models: ModelSet, dataplane: DataPlane, instance_id: str, max_request_bytes: int) -> None:
    """What the app gets before KServe starts it: the TF Serving routes and the body cap."""
    routes.install(app_, models, dataplane, instance_id)
    app_.add_middleware(RequestBodyCap, max_bytes=max_request_bytes)


def serve(model_name: str | None, base_path: Path | None, config_path: Path | None, host: str, port: int,
          poll_seconds: float, max_request_bytes: int, config_dir: Path | None = None, instance_id: str = "") -> None:
    registry = ModelRepository()
    server = BoundModelServer(host, http_port=port, registered_models=registry, enable_grpc=False,
                              workers=1, enable_latency_logging=False)
    if config_dir is not None:
        models = ModelSet(config_dir, registry)
        what = f"every model configured in {config_dir}"
    else:
        models = ModelSet.single(ModelVersions(model_name, base_path, config_path, registry))
        what = f"{model_name} from {base_path} (labels: {config_path})"
    prepare(app, models, server.dataplane, instance_id, max_request_bytes)
    # KServe logs two timing lines per request at INFO; the access log already has one.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    # KServe 0.21 answers with FastAPI's ORJSONResponse, which FastAPI deprecates: not ours to fix.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    log.info("serving %s on http://%s:%d (request bodies up to %d bytes)", what, host, port, max_request_bytes)
    # Versions load in the background, like TF Serving's file system poller: the server is
    # live at once and reports each version's state on GET /v1/models/{name}.
    stop = threading.Event()
    threading.Thread(target=models.run_forever, args=(poll_seconds, stop), name="version-poller",
                     daemon=True).start()
    try:
        server.start([])  # no model yet; the poller registers versions as they load
    finally:
        stop.set()
