"""What the TF Serving stand-in exposes: TF Serving's REST routes only, and bodies up to a cap.

Issue 21, finding 3: a 211 MB body was accepted (RSS 1.4 -> 2.75 GB), and KServe's own
`POST /v2/repository/models/NAME/unload` answered 200 and unloaded the model.
"""
from __future__ import annotations

import json
import re

import psutil
import pytest
import requests
from fastapi import FastAPI
from kserve.model_repository import ModelRepository
from kserve.model_server import ModelServer
from kserve.protocol.rest.server import RESTServer
from serving_helpers import serving_version_1
from starlette.routing import Route
from tf_serving_rest import cli, surface
from tf_serving_rest import server as server_module
from tf_serving_rest.limits import DEFAULT_MAX_REQUEST_BYTES
from tf_serving_rest.versions import ModelSet

# Written out here, not imported: widening the server's surface must fail this test.
ALLOWED = {
    ("GET", "/v1/models/{model_name}"),
    ("GET", "/v1/models/{model_name}/versions/{version}"),
    ("GET", "/v1/models/{model_name}/labels/{label}"),
    ("GET", "/v1/models/{model_name}/metadata"),
    ("GET", "/v1/models/{model_name}/versions/{version}/metadata"),
    ("GET", "/v1/models/{model_name}/labels/{label}/metadata"),
    ("POST", "/v1/models/{model_name}:predict"),
    ("POST", "/v1/models/{model_name}/versions/{version}:predict"),
    ("POST", "/v1/models/{model_name}/labels/{label}:predict"),
    ("GET", "/tf-serving-rest/instance"),  # the local starter's identity check (the instance id only)
    ("*", "/{path:path}"),  # the last route: TF Serving's error for anything else
}
INSTANCES = [{"size": 1.5, "weight": 2.0, "colour": "green"}]
CAP = 1024 * 1024  # the live server's cap in these tests (the default is tested in-process)


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    table = set()
    for route in app.router.routes:
        assert isinstance(route, Route), route  # no mounts, websockets or static files
        methods = route.methods or set()
        table |= {("*", route.path)} if methods >= surface.ALL_METHODS else {(m, route.path) for m in methods}
    return table


def kserve_routes() -> list[tuple[str, str]]:
    """Every (method, path) KServe 0.21 registers at start, on an app of their own."""
    app = FastAPI(openapi_url="/openapi.json", docs_url="/docs")
    kserve = ModelServer(http_port=0, registered_models=ModelRepository(), enable_grpc=False, workers=1)
    RESTServer("kserve.model_server:app", kserve.dataplane, kserve.model_repository_extension, 0) \
        ._register_endpoints(app)

    def flat(routes):  # FastAPI 0.165 keeps an included router as one entry holding the router
        for route in routes:
            yield from flat(route.original_router.routes) if hasattr(route, "original_router") else [route]

    return sorted((m, r.path) for r in flat(app.router.routes) if isinstance(r, Route) for m in (r.methods or ()))


def test_the_default_cap_is_16_mib():
    assert DEFAULT_MAX_REQUEST_BYTES == 16 * 1024 * 1024
    args = cli.parse_args(["--model-name", "m", "--model-base-path", "/nonexistent"])
    assert args.max_request_bytes == DEFAULT_MAX_REQUEST_BYTES


def test_the_app_holds_only_tf_serving_routes(tmp_path):
    # What serve() does, on an app of the test's own: our routes, then KServe's at start, restricted.
    registry = ModelRepository()
    kserve = ModelServer(http_port=0, registered_models=registry, enable_grpc=False, workers=1)
    app = FastAPI()  # FastAPI's own /openapi.json and /docs too
    server_module.prepare(app, ModelSet(tmp_path, registry), kserve.dataplane, "", DEFAULT_MAX_REQUEST_BYTES)
    RESTServer("kserve.model_server:app", kserve.dataplane, kserve.model_repository_extension, 0) \
        ._register_endpoints(app)
    surface.restrict(app)
    assert route_table(app) == ALLOWED
    assert app.router.routes[-1].path == "/{path:path}"  # the catch-all never shadows a route


@pytest.fixture(scope="module")
def capped(tmp_path_factory, fixture_models):
    with serving_version_1(tmp_path_factory.mktemp("capped"), fixture_models["v1"],
                           extra_args=("--max-request-bytes", str(CAP))) as process:
        yield process


def fill(path: str, model: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if "version" in m.group() else model, path)


def test_no_kserve_route_answers_and_the_model_stays(capped):
    ours = {(m, p) for m, p in ALLOWED if m != "*"}
    probed = 0
    for method, path in kserve_routes():
        if (method, path) in ours:
            continue  # KServe's GET /v1/models/{name} and :predict: TF Serving's routes, ours answer them
        url = capped.url + fill(path, capped.model_name)
        response = requests.request(method, url, json={}, timeout=10)
        # TF Serving: a path under /v1/ it cannot parse is 400 "Malformed request"; any other path 404.
        expected = 400 if path.startswith("/v1/") else 404
        assert response.status_code == expected, (method, path, response.status_code, response.text)
        if method != "HEAD":  # a HEAD answer has no body
            assert set(response.json()) == {"error"}, (method, path, response.text)
        probed += 1
    assert probed >= 15  # /, /metrics, /docs, /openapi.json, /v1/models, :explain, /v2/... load, unload
    response = requests.post(f"{capped.url}/v2/repository/models/{capped.model_name}/unload", timeout=10)
    assert response.status_code == 404
    assert capped.predict({"instances": INSTANCES}).status_code == 200  # still loaded
    assert capped.status().json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_tf_serving_errors_for_other_paths(capped):
    response = requests.get(f"{capped.url}/v1/models/{capped.model_name}/nonsense", timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": f"Malformed request: GET /v1/models/{capped.model_name}/nonsense"}
    response = requests.post(f"{capped.url}/v1/models/{capped.model_name}", json={}, timeout=5)  # wrong method
    assert response.status_code == 400 and response.json()["error"].startswith("Malformed request: POST")
    response = requests.get(f"{capped.url}/v2/health/live", timeout=5)
    assert response.status_code == 404 and response.json() == {"error": "Not found: /v2/health/live"}


def test_a_body_over_the_cap_is_413_and_never_held(capped):
    process = psutil.Process(capped.process.pid)
    before = process.memory_info().rss
    body = b'{"instances": [' + b" " * (64 * CAP) + b"]}"  # 64 MiB of JSON whitespace
    response = requests.post(f"{capped.url}/v1/models/{capped.model_name}:predict", data=body, timeout=60)
    assert response.status_code == 413
    assert response.json() == {"error": f"Request body is {len(body)} bytes; this server accepts at most {CAP} "
                                        "(--max-request-bytes)"}
    grown = process.memory_info().rss - before
    assert grown < 16 * CAP, f"RSS grew {grown / CAP:.1f} MiB"  # a 64 MiB body was not buffered


def test_a_chunked_body_over_the_cap_is_413(capped):
    def chunks():
        for _ in range(64):
            yield b" " * (64 * 1024)  # 4 MiB in all, no Content-Length

    response = requests.post(f"{capped.url}/v1/models/{capped.model_name}:predict", data=chunks(), timeout=60)
    assert response.status_code == 413
    assert response.json() == {"error": f"Request body is over {CAP} bytes; this server accepts at most {CAP} "
                                        "(--max-request-bytes)"}


def test_a_body_up_to_the_cap_is_served(capped):
    body = json.dumps({"instances": INSTANCES}).encode()
    padded = body[:-1] + b" " * (CAP - len(body)) + b"}"  # exactly the cap
    assert len(padded) == CAP
    response = requests.post(f"{capped.url}/v1/models/{capped.model_name}:predict", data=padded, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == len(INSTANCES)
