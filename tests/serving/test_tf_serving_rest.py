"""The TF Serving stand-in against TF Serving's REST API: routes, shapes, errors, versions."""
from __future__ import annotations

import base64
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import saved_models
import tensorflow as tf
from serving_helpers import ServingProcess, serving_version_1, wait_until

INSTANCES = [
    {"size": 1.5, "weight": 2.0, "colour": "green"},
    {"size": -3.0, "weight": 0.25, "colour": "mauve"},  # out of vocabulary
]
OK = {"error_code": "OK", "error_message": ""}


def in_process_scores(saved_model: Path, instances=INSTANCES) -> np.ndarray:
    """What the SavedModel itself answers, called through its signature in this process."""
    signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    _, specs = signature.structured_input_signature
    tensors = {name: tf.constant([i[name] for i in instances], spec.dtype) for name, spec in specs.items()}
    (output,) = signature(**tensors).values()
    return output.numpy()


@pytest.fixture(scope="module")
def server(tmp_path_factory, fixture_models):
    """One server with version 1, no config file: read-only tests share it."""
    with serving_version_1(tmp_path_factory.mktemp("serving"), fixture_models["v1"]) as process:
        yield process


def test_model_status_has_tf_serving_shape(server):
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": OK}]}
    assert server.status().json() == expected
    assert server.status("/versions/1").json() == expected


def test_unknown_model_or_version_is_404_and_unknown_label_400(server):
    # TF Serving: NOT_FOUND for a model or version, INVALID_ARGUMENT for a label it does not know.
    for url in (f"{server.url}/v1/models/nope", f"{server.url}/v1/models/{server.model_name}/versions/7"):
        response = requests.get(url, timeout=5)
        assert response.status_code == 404, url
        assert set(response.json()) == {"error"}
    response = requests.get(f"{server.url}/v1/models/{server.model_name}/labels/canary", timeout=5)
    assert response.status_code == 400 and response.json() == {"error": "Unrecognized servable version label: canary"}
    response = server.predict({"instances": INSTANCES}, "/versions/7")
    assert response.status_code == 404 and "error" in response.json()
    response = server.predict({"instances": INSTANCES}, "/labels/canary")
    assert response.status_code == 400 and response.json() == {"error": "Unrecognized servable version label: canary"}
    response = requests.post(f"{server.url}/v1/models/nope:predict", json={"instances": INSTANCES}, timeout=5)
    assert response.status_code == 404 and response.json() == {"error": "Servable not found for request: Latest(nope)"}


@pytest.mark.parametrize("route", ["", "/versions/1"], ids=["default", "version"])
def test_row_predictions_equal_the_saved_model_output(server, fixture_models, route):
    # No signature_name: TF Serving's serving_default, the named raw features.
    response = server.predict({"instances": INSTANCES}, route)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    expected = in_process_scores(fixture_models["v1"])
    assert np.asarray(predictions).shape == (2, 1)  # a list of [value] per instance, as TF Serving
    np.testing.assert_allclose(predictions, expected, rtol=1e-6)
    np.testing.assert_allclose(predictions, [[saved_models.expected_score(i, 1.0)] for i in INSTANCES])
    named = server.predict({"signature_name": "serving_default", "instances": INSTANCES}, route)
    assert named.json() == response.json()


def test_b64_tf_examples_go_to_from_examples_by_name_only(server, fixture_models):
    examples = [base64.b64encode(saved_models.serialized_example(i)).decode() for i in INSTANCES]
    expected = in_process_scores(fixture_models["v1"])
    for body in ({"signature_name": "from_examples", "instances": [{"b64": e} for e in examples]},
                 {"signature_name": "from_examples", "instances": [{"examples": {"b64": e}} for e in examples]},
                 {"signature_name": "from_examples", "inputs": {"examples": [{"b64": e} for e in examples]}},
                 {"signature_name": "from_examples", "inputs": [{"b64": e} for e in examples]}):
        response = server.predict(body)
        assert response.status_code == 200, response.text
        (key,) = response.json()
        np.testing.assert_allclose(response.json()[key], expected, rtol=1e-6)
    # Without signature_name, serving_default (three named inputs) gets them: TF Serving's errors.
    response = server.predict({"instances": [{"b64": e} for e in examples]})
    assert response.status_code == 400
    assert response.json() == {"error": "input size does not match signature: 1!=3 len({colour}) != "
                                        "len({colour,size,weight}). Sent extra: {}. Missing but required: "
                                        "{size,weight}."}
    response = server.predict({"instances": [{"examples": {"b64": e}} for e in examples]})
    assert response.status_code == 400
    assert response.json()["error"] == ("Failed to process element: 0 key: examples of 'instances' list. Error: "
                                        "INVALID_ARGUMENT: JSON object: does not have named input: examples")


def test_columnar_inputs_answer_outputs(server, fixture_models):
    inputs = {name: [i[name] for i in INSTANCES] for name in INSTANCES[0]}
    response = server.predict({"inputs": inputs})
    assert response.status_code == 200, response.text
    assert list(response.json()) == ["outputs"]
    np.testing.assert_allclose(response.json()["outputs"], in_process_scores(fixture_models["v1"]), rtol=1e-6)
    # TF Serving reads only the signature's inputs from a columnar object; the rest is ignored.
    extra = server.predict({"inputs": {**inputs, "shoe_size": [44, 45]}})
    assert extra.status_code == 200 and extra.json() == response.json()


def test_the_readme_and_kubernetes_smoke_test_body_works(server):
    # The body README.md shows and serving/kubernetes.py's smoke test sends: no signature_name.
    body = {"instances": [{"size": 1.0, "weight": 1.0, "colour": "red"}]}
    for route in ("", "/versions/1"):
        response = server.predict(body, route)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [[14.0]]}


def test_body_without_json_content_type_is_parsed(server):
    # `curl -d` sends application/x-www-form-urlencoded; TF Serving reads the body as JSON anyway.
    response = requests.post(f"{server.url}/v1/models/{server.model_name}:predict",
                             data='{"instances": [{"size": 1, "weight": 1, "colour": "red"}]}',
                             headers={"content-type": "application/x-www-form-urlencoded"}, timeout=5)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[14.0]]}


@pytest.mark.parametrize("body, reason", [
    ({"instances": [{**INSTANCES[0], "shoe_size": 44}]},
     "Failed to process element: 0 key: shoe_size of 'instances' list. Error: INVALID_ARGUMENT: JSON object: "
     "does not have named input: shoe_size"),
    ({"instances": [{"size": 1.0, "colour": "red"}]},
     "Failed to process element: 0 of 'instances' list. JSON object: {\"size\":1.0,\"colour\":\"red\"} "
     "must only have keys: colour,size,weight"),
    ({"inputs": {"size": [1.0], "colour": ["red"]}}, "Missing named input: weight in 'inputs' object."),
    ({"instances": [{**INSTANCES[0], "size": "large"}]}, "size"),
    ({"instances": [{**INSTANCES[0], "colour": 3}]}, "colour"),
    ({"instances": [{k: [v] for k, v in INSTANCES[0].items()}]}, "shape"),  # [None] inputs take scalars
    ({"signature_name": "from_examples", "instances": [{"b64": "not base64!"}]}, "examples"),
    ({"instances": []}, "No values in 'instances' array"),
    ({"instances": [1.0, 2.0]}, "instances is a plain list, but expecting list of objects"),
    ({"instances": INSTANCES, "inputs": {}}, "expecting only one of 'inputs' or 'instances' keys to exist"),
    ({"rows": INSTANCES}, "Missing 'inputs' or 'instances' key"),
    ({"signature_name": "nope", "instances": INSTANCES}, 'Serving signature name: "nope" not found in signature def'),
    ({"signature_name": "serving_raw", "instances": INSTANCES}, '"serving_raw" not found'),
], ids=["unknown-feature", "missing-feature", "missing-column", "wrong-type", "number-for-string", "list-per-scalar",
        "bad-b64", "empty", "plain-list", "both-formats", "no-inputs", "unknown-signature", "no-guessed-signature"])
def test_bad_input_is_400_with_error(server, body, reason):
    response = server.predict(body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert reason in response.json()["error"]


def test_metadata_lists_the_signatures(server):
    metadata = server.status("/metadata").json()
    assert metadata["model_spec"] == {"name": server.model_name, "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "from_examples"}
    assert signatures["serving_default"]["inputs"]["size"]["dtype"] == "DT_FLOAT"
    assert signatures["serving_default"]["inputs"]["colour"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
    assert signatures["serving_default"]["outputs"]["score"]["dtype"] == "DT_FLOAT"
    assert signatures["from_examples"]["inputs"]["examples"]["dtype"] == "DT_STRING"


def test_listens_on_loopback_only(server):
    assert listening_addresses(server.port) == {"127.0.0.1"}


def test_single_instance_latency(server):
    body = {"instances": INSTANCES[:1]}
    with requests.Session() as session:
        url = f"{server.url}/v1/models/{server.model_name}:predict"
        latencies = []
        for _ in range(120):
            start = time.perf_counter()
            assert session.post(url, json=body, timeout=5).status_code == 200
            latencies.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(latencies[20:])
    print(f"\nsingle-instance predict p50 = {p50:.2f} ms, p90 = {np.percentile(latencies[20:], 90):.2f} ms")
    assert p50 < 100  # generous: two cores shared with other work


def test_labels_switch_the_default_route_and_unload_the_rest(start_server, fixture_models):
    server = start_server()
    server.add_version(1, fixture_models["v1"])
    server.add_version(2, fixture_models["v2"])
    server.set_labels(stable=1, canary=2)
    server.wait_state(1, "AVAILABLE")
    server.wait_state(2, "AVAILABLE")
    assert score(server) == score_of(1.0)
    assert score(server, "/versions/2") == score(server, "/labels/canary") == score_of(2.0)
    assert server.status("/labels/stable").json()["model_version_status"][0]["version"] == "1"

    server.set_labels(stable=2)
    wait_until(lambda: score(server) == score_of(2.0), 30, "the default route to serve version 2")
    assert score(server, "/labels/stable") == score_of(2.0)
    # Version 1 is neither labelled nor the newest any more: unloaded, reported END.
    assert server.wait_state(1, "END")["status"] == OK
    assert server.predict({"instances": INSTANCES[:1]}, "/versions/1").status_code == 404

    server.set_labels(stable=1)  # rolling back reloads it
    wait_until(lambda: score(server) == score_of(1.0), 60, "the default route to serve version 1 again")


def test_broken_version_never_replaces_the_serving_one(start_server, fixture_models):
    server = start_server()
    server.add_version(1, fixture_models["v1"])
    server.wait_state(1, "AVAILABLE")
    broken = server.base_path / ".staging"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a protobuf")
    broken.rename(server.base_path / "2")

    status = server.wait_state(2, "END")
    assert status["status"]["error_code"] != "OK" and status["status"]["error_message"]
    assert score(server) == score_of(1.0)  # highest version, but it failed: version 1 still serves
    assert server.predict({"instances": INSTANCES[:1]}, "/versions/2").status_code == 404
    statuses = {s["version"]: s["state"] for s in server.status().json()["model_version_status"]}
    assert statuses == {"2": "END", "1": "AVAILABLE"}

    server.set_labels(stable=2)  # even labelled stable, it cannot take over
    time.sleep(1)
    assert score(server) == score_of(1.0)
    assert server.status("/labels/stable").json()["model_version_status"][0]["state"] == "END"


def score(server: ServingProcess, route: str = "") -> float:
    response = server.predict({"instances": INSTANCES[:1]}, route)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0][0]


def score_of(bias: float) -> float:
    return pytest.approx(saved_models.expected_score(INSTANCES[0], bias))


def listening_addresses(port: int) -> set[str]:
    """IPv4/IPv6 addresses with a listening TCP socket on `port`, from /proc/net/tcp{,6}."""
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                if len(address) == 8:
                    addresses.add(".".join(str(b) for b in bytes.fromhex(address)[::-1]))
                else:
                    addresses.add(address)
    return addresses


def test_a_configured_model_without_stable_never_answers_on_the_default_route(start_server, fixture_models):
    # A deployer's first version, untested or rejected: reachable by version only, never by default.
    server = start_server()
    server.set_labels()
    server.add_version(1, fixture_models["v1"])
    server.wait_state(1, "AVAILABLE")
    response = server.predict({"instances": INSTANCES})
    assert response.status_code == 404
    assert response.json() == {"error": f"Servable not found for request: Latest({server.model_name})"}
    assert server.predict({"instances": INSTANCES}, "/versions/1").status_code == 200
    server.set_labels(stable=1)
    wait_until(lambda: server.predict({"instances": INSTANCES}).status_code == 200, 30, "stable to serve")


def test_one_server_serves_every_model_of_a_serving_root(tmp_path, fixture_models):
    import os
    import shutil
    import subprocess
    import sys

    from serving_helpers import REPO, free_port

    root = tmp_path / "root"
    root.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "tf_serving_rest", "--model-config-dir", str(root),
                                "--port", str(port), "--poll-seconds", "0.2", "--instance-id", "nonce-1"],
                               env=dict(os.environ, PYTHONPATH=str(REPO / "include" / "serving")),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: requests.get(f"{url}/tf-serving-rest/instance", timeout=1).json(), 120, "the server")
        assert requests.get(f"{url}/tf-serving-rest/instance", timeout=5).json() == {"instance_id": "nonce-1"}
        for name, model in (("first", "v1"), ("second", "v2")):  # models added while it runs
            (root / f"{name}.config.json").write_text('{"version_labels": {"stable": 1}}')
            (root / name).mkdir()
            shutil.copytree(fixture_models[model], root / name / ".staging")
            (root / name / ".staging").rename(root / name / "1")
        for name, bias in (("first", 1.0), ("second", 2.0)):
            response = wait_until(lambda: (r := requests.post(f"{url}/v1/models/{name}:predict",
                                                              json={"instances": INSTANCES[:1]}, timeout=5)).ok and r,
                                  60, f"model {name}")
            assert response.json() == {"predictions": [[saved_models.expected_score(INSTANCES[0], bias)]]}
    finally:
        process.terminate()
        process.wait(30)
