"""TF Serving on Kubernetes: canary, smoke test, promotion, and the way back on failure.

The Kubernetes API is a fake with kubernetes.client's method names and return types (V1
objects deserialized from what the API server would send, ApiException on 404/409); TF
Serving's REST API is answered by an httpx MockTransport following TF Serving's routes.
"""
import json
import math
from pathlib import Path

import httpx
import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from tune_serve.serving import kubernetes as ks
from tune_serve.serving.errors import ModelRejected
from tune_serve.serving.rest_client import TFServingREST

MODEL = "diamonds"
INSTANCE = {"carat": 0.3, "cut": "Ideal"}


class _Response:  # what ApiClient.deserialize reads
    def __init__(self, data):
        self.data = json.dumps(data)


def _typed(data: dict, kind: str):
    return ApiClient().deserialize(_Response(data), kind)


def _missing(what):
    return ApiException(status=404, reason=f"Not Found: {what}")


class FakeCluster:
    """Objects by (kind, name); a rollout succeeds unless `stall_on_version` is being loaded."""

    def __init__(self, stall_on_version=None):
        self.objects: dict[tuple[str, str], dict] = {}
        self.stall_on_version = stall_on_version
        self.rollouts: list[dict] = []

    # -- CoreV1Api
    def create_namespaced_config_map(self, namespace, body):
        return self._create("ConfigMap", body, "V1ConfigMap")

    def list_namespaced_config_map(self, namespace, label_selector=None):
        wanted = dict(pair.split("=") for pair in label_selector.split(",")) if label_selector else {}
        items = [o for (kind, _), o in self.objects.items() if kind == "ConfigMap"
                 and wanted.items() <= o["metadata"].get("labels", {}).items()]
        return _typed({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {}, "items": items}, "V1ConfigMapList")

    def delete_namespaced_config_map(self, name, namespace):
        return self._delete("ConfigMap", name)

    def create_namespaced_service(self, namespace, body):
        return self._create("Service", body, "V1Service")

    def delete_namespaced_service(self, name, namespace):
        return self._delete("Service", name)

    # -- AppsV1Api
    def read_namespaced_deployment(self, name, namespace):
        if ("Deployment", name) not in self.objects:
            raise _missing(name)
        return _typed(self.objects[("Deployment", name)], "V1Deployment")

    read_namespaced_deployment_status = read_namespaced_deployment

    def create_namespaced_deployment(self, namespace, body):
        body = json.loads(json.dumps(body))
        body["metadata"]["generation"] = 0
        self.objects[("Deployment", body["metadata"]["name"])] = body
        return self._roll(body)

    def patch_namespaced_deployment(self, name, namespace, body):
        if ("Deployment", name) not in self.objects:
            raise _missing(name)
        current = self.objects[("Deployment", name)]
        patched = json.loads(json.dumps(body))
        patched["metadata"]["generation"] = current["metadata"]["generation"]
        self.objects[("Deployment", name)] = patched
        return self._roll(patched)

    def delete_namespaced_deployment(self, name, namespace):
        return self._delete("Deployment", name)

    # -- what the fake cluster does
    def _roll(self, deployment):
        deployment["metadata"]["generation"] += 1
        state = ks.ServingState.from_json(deployment["metadata"]["annotations"][ks.STATE_ANNOTATION])
        replicas = deployment["spec"]["replicas"]
        self.rollouts.append({"labels": dict(state.labels), "versions": state.versions})
        if self.stall_on_version in state.versions and self.stall_on_version != self.serving_version():
            deployment["status"] = {
                "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas + 1,
                "updatedReplicas": 1, "availableReplicas": replicas, "conditions": [{
                    "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                    "message": f'ReplicaSet "{deployment["metadata"]["name"]}-7c9" has timed out progressing.'}]}
        else:
            deployment["status"] = {"observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
                                    "updatedReplicas": replicas, "readyReplicas": replicas,
                                    "availableReplicas": replicas}
        return _typed(deployment, "V1Deployment")

    def serving_state(self):
        deployment = self.objects.get(("Deployment", ks.object_name(MODEL)))
        if deployment is None:
            return None
        return ks.ServingState.from_json(deployment["metadata"]["annotations"][ks.STATE_ANNOTATION])

    def serving_version(self):
        state = self.serving_state()
        return state.labels.get("stable") if state else None

    def _create(self, kind, body, type_name):
        key = (kind, body["metadata"]["name"])
        if key in self.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.objects[key] = json.loads(json.dumps(body))
        return _typed(self.objects[key], type_name)

    def _delete(self, kind, name):
        if self.objects.pop((kind, name), None) is None:
            raise _missing(name)
        return _typed({"apiVersion": "v1", "kind": "Status", "status": "Success"}, "V1Status")

    def names(self, kind):
        return sorted(name for k, name in self.objects if k == kind)


def tf_serving(cluster: FakeCluster, prediction=1234.5) -> TFServingREST:
    """TF Serving's REST routes, answering from the config the fake Deployment has rolled out."""

    def status(version):
        return {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    def handle(request: httpx.Request) -> httpx.Response:
        state = cluster.serving_state()
        path = request.url.path.removeprefix(f"/v1/models/{MODEL}")
        if request.method == "GET" and path.startswith("/versions/"):
            version = int(path.rsplit("/", 1)[1])
            return httpx.Response(200, json=status(version)) if version in state.versions else httpx.Response(404)
        if request.method == "GET" and path.startswith("/labels/"):
            label = path.rsplit("/", 1)[1]
            return httpx.Response(200, json=status(state.labels[label])) if label in state.labels \
                else httpx.Response(404, json={"error": f"Unrecognized servable version label: {label}"})
        if request.method == "POST" and path.endswith(":predict"):
            # TF Serving's serving_default, as the README's example: no signature_name, scalars
            assert json.loads(request.content) == {"instances": [INSTANCE]}
            # TF Serving writes a diverged model's output as a bare NaN/Infinity
            return httpx.Response(200, content=json.dumps({"predictions": [[prediction]]}),
                                  headers={"content-type": "application/json"})
        return httpx.Response(404)

    rest = TFServingREST("http://tfserving-diamonds.tune-serve.svc.cluster.local:8501", MODEL)
    rest.http = httpx.Client(base_url=rest.http.base_url, transport=httpx.MockTransport(handle))
    return rest


@pytest.fixture
def serving_root(tmp_path, monkeypatch):
    root = tmp_path / "serving"
    monkeypatch.setenv("TUNE_SERVE_SERVING_ROOT", str(root))
    return root


def saved_model(tmp_path: Path, name="model") -> str:
    path = tmp_path / name
    (path / "variables").mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"\x08\x01")
    (path / "variables" / "variables.index").write_bytes(b"0")
    return str(path)


def _deploy(cluster, model_path, prediction=1234.5):
    settings = ks.ServingSettings(timeout_seconds=5)
    handle = ks.TFServingCluster(cluster, cluster, MODEL, settings, poll_seconds=0)
    return ks.deploy(model_path, MODEL, INSTANCE, cluster=handle, rest=tf_serving(cluster, prediction)), handle


def test_first_deployment_serves_version_1(tmp_path, serving_root):
    cluster = FakeCluster()
    result, handle = _deploy(cluster, saved_model(tmp_path))
    assert result == {"model_name": MODEL, "version": 1, "previous_version": None, "prediction": [1234.5],
                      "url": "http://tfserving-diamonds.tune-serve.svc.cluster.local:8501/v1/models/diamonds:predict"}
    assert [r["labels"] for r in cluster.rollouts] == [{"canary": 1}, {"stable": 1}]
    assert (serving_root / MODEL / "1" / "saved_model.pb").exists()
    assert cluster.names("Service") == ["tfserving-diamonds"]
    assert len(cluster.names("ConfigMap")) == 1  # the canary's config is pruned
    assert ks.current_model(MODEL, cluster=handle) == f"{serving_root}/{MODEL}/1"


def test_next_deployment_canaries_then_promotes(tmp_path, serving_root):
    cluster = FakeCluster()
    _deploy(cluster, saved_model(tmp_path, "first"))
    result, handle = _deploy(cluster, saved_model(tmp_path, "second"))
    assert (result["version"], result["previous_version"]) == (2, 1)
    assert cluster.rollouts[-2:] == [{"labels": {"stable": 1, "canary": 2}, "versions": (1, 2)},
                                     {"labels": {"stable": 2}, "versions": (1, 2)}]
    assert len(cluster.names("ConfigMap")) == 2  # in force, and the previous one to roll back to
    assert ks.current_model(MODEL, cluster=handle).endswith(f"/{MODEL}/2")


def test_failed_smoke_test_restores_the_previous_version(tmp_path, serving_root):
    cluster = FakeCluster()
    _deploy(cluster, saved_model(tmp_path, "first"))
    before = json.loads(json.dumps(cluster.objects[("Deployment", "tfserving-diamonds")]))
    with pytest.raises(ModelRejected, match="expected one finite prediction"):
        _deploy(cluster, saved_model(tmp_path, "diverged"), prediction=math.nan)
    after = cluster.objects[("Deployment", "tfserving-diamonds")]
    assert cluster.serving_state().labels == {"stable": 1}
    assert _config_volume(after) == _config_volume(before)
    assert (serving_root / MODEL / "2").is_dir()  # versions only grow: the rejected one stays, unserved


def test_a_version_that_never_gets_ready_is_rolled_back(tmp_path, serving_root):
    cluster = FakeCluster(stall_on_version=2)
    _deploy(cluster, saved_model(tmp_path, "first"))
    with pytest.raises(ModelRejected, match="ProgressDeadlineExceeded|timed out progressing"):
        _deploy(cluster, saved_model(tmp_path, "unloadable"))
    assert cluster.serving_state().labels == {"stable": 1}
    assert cluster.serving_state().versions == (1,)


def test_a_failed_first_deployment_leaves_nothing_behind(tmp_path, serving_root):
    cluster = FakeCluster()
    with pytest.raises(ModelRejected):
        _deploy(cluster, saved_model(tmp_path), prediction=math.inf)
    assert cluster.objects == {}


def test_not_a_saved_model_is_rejected_before_touching_the_cluster(tmp_path, serving_root):
    cluster = FakeCluster()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelRejected, match="not a SavedModel"):
        _deploy(cluster, str(tmp_path / "empty"))
    assert cluster.objects == {} and cluster.rollouts == []


def test_no_deployment_means_no_baseline():
    handle = ks.TFServingCluster(FakeCluster(), FakeCluster(), MODEL, ks.ServingSettings())
    assert ks.current_model(MODEL, cluster=handle) is None


def _config_volume(deployment):
    return next(v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")


def test_the_readme_example_and_the_smoke_tests_send_the_same_body():
    """One body for every client: the README's curl example has the shape the smoke test sends
    (row format, one scalar per feature, no signature_name: TF Serving's serving_default)."""
    import re
    from pathlib import Path

    from tune_serve.serving.rest_client import predict_body

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [example] = re.findall(r"curl -d '(\{.*?\})'", readme)
    body = json.loads(example)
    [instance] = body["instances"]
    assert body == predict_body([instance])
    assert "signature_name" not in body
    assert set(instance) == {"carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"}
    assert all(not isinstance(v, (list, dict)) for v in instance.values())
