"""The server process: KServe's ModelServer with the TF Serving routes and a version poller."""
from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

from kserve import ModelServer
from kserve.model_repository import ModelRepository
from kserve.model_server import app

from . import routes
from .versions import ModelVersions, log


class BoundModelServer(ModelServer):
    """kserve.ModelServer listening on one interface instead of all of them.

    KServe 0.21's RESTServer hardcodes host="0.0.0.0" in the uvicorn.Config it builds inside
    start(), with no parameter to change it. start() calls setup_event_loop() after building
    that RESTServer and before serving, so that is where the bind address is set.
    """

    def __init__(self, host: str, **kwargs):
        super().__init__(**kwargs)
        self.host = host

    def setup_event_loop(self):
        self._rest_server.config.host = self.host
        super().setup_event_loop()


def serve(model_name: str, base_path: Path, config_path: Path, host: str, port: int,
          poll_seconds: float) -> None:
    registry = ModelRepository()
    server = BoundModelServer(host, http_port=port, registered_models=registry, enable_grpc=False,
                              workers=1, enable_latency_logging=False)
    versions = ModelVersions(model_name, base_path, config_path, registry)
    routes.install(app, versions, server.dataplane)
    # KServe logs two timing lines per request at INFO; the access log already has one.
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    # KServe 0.21 answers with FastAPI's ORJSONResponse, which FastAPI deprecates: not ours to fix.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    log.info("serving %s from %s (labels: %s) on http://%s:%d", model_name, base_path, config_path, host, port)
    # Versions load in the background, like TF Serving's file system poller: the server is
    # live at once and reports each version's state on GET /v1/models/{name}.
    stop = threading.Event()
    threading.Thread(target=versions.run_forever, args=(poll_seconds, stop), name="version-poller",
                     daemon=True).start()
    try:
        server.start([])  # no model yet; the poller registers versions as they load
    finally:
        stop.set()
