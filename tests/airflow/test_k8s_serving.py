"""TF Serving on Kubernetes: canary, smoke test, promotion, and the way back on failure.

The Kubernetes API is a fake with kubernetes.client's method names and return types (V1
objects deserialized from what the API server would send) and the API server's rules for
concurrent writers (k8s_testing.FakeApiServer: 409 AlreadyExists, 409 Conflict); TF
Serving's REST API is answered by an httpx MockTransport following TF Serving's routes.
"""
import copy
import json
import math
import uuid
from datetime import UTC
from pathlib import Path

import httpx
import pytest
from k8s_testing import FakeApiServer
from kubernetes.client import ApiClient

from tune_serve.kubernetes import serving as ks
from tune_serve.kubernetes import serving_cluster as k8s_cluster
from tune_serve.kubernetes import serving_manifests as k8s_manifests
from tune_serve.kubernetes import serving_versions as k8s_versions
from tune_serve.kubernetes import settings as k8s_settings
from tune_serve.serving.errors import ModelRejected, ServingUnavailable
from tune_serve.serving.rest_client import TFServingREST

MODEL = "diamonds"
INSTANCE = {"carat": 0.3, "cut": "Ideal"}


class _Response:  # what ApiClient.deserialize reads
    def __init__(self, data):
        self.data = json.dumps(data)


def _typed(data: dict, kind: str):
    return ApiClient().deserialize(_Response(data), kind)


class FakeCluster(FakeApiServer):
    """The API server's objects and rules (k8s_testing.FakeApiServer) plus a Deployment
    controller: a rollout succeeds unless `stall_on_version` is being loaded."""

    def __init__(self, stall_on_version=None):
        super().__init__()
        self.stall_on_version = stall_on_version
        self.rollouts: list[dict] = []

    # -- CoreV1Api
    def create_namespaced_config_map(self, namespace, body):
        return self.create("ConfigMap", body)

    def list_namespaced_config_map(self, namespace, label_selector=None):
        return _typed({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {},
                       "items": self.list("ConfigMap", label_selector)}, "V1ConfigMapList")

    def delete_namespaced_config_map(self, name, namespace):
        return self.delete("ConfigMap", name)

    def create_namespaced_service(self, namespace, body):
        return self.create("Service", body)

    def delete_namespaced_service(self, name, namespace):
        return self.delete("Service", name)

    # -- AppsV1Api
    def read_namespaced_deployment(self, name, namespace):
        return self.read("Deployment", name)

    read_namespaced_deployment_status = read_namespaced_deployment

    def create_namespaced_deployment(self, namespace, body):
        with self.lock:
            self.create("Deployment", body)
            return self._roll(body["metadata"]["name"])

    def patch_namespaced_deployment(self, name, namespace, body):
        with self.lock:
            self.patch("Deployment", name, body)
            return self._roll(name)

    def delete_namespaced_deployment(self, name, namespace):
        return self.delete("Deployment", name)

    # -- what the fake cluster's Deployment controller does
    def _roll(self, name):
        deployment = self.objects[("Deployment", name)]
        state = k8s_manifests.ServingState.from_json(deployment["metadata"]["annotations"][k8s_manifests.STATE_ANNOTATION])
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
        deployment["metadata"]["resourceVersion"] = self._next()  # the controller's status update
        return _typed(deployment, "V1Deployment")

    def serving_state(self):
        deployment = self.objects.get(("Deployment", k8s_manifests.object_name(MODEL)))
        if deployment is None:
            return None
        return k8s_manifests.ServingState.from_json(deployment["metadata"]["annotations"][k8s_manifests.STATE_ANNOTATION])

    def serving_version(self):
        state = self.serving_state()
        return state.labels.get("stable") if state else None


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


def _deploy(cluster, model_path, prediction=1234.5, candidate=None):
    settings = k8s_settings.ServingSettings(timeout_seconds=5)
    handle = k8s_cluster.TFServingCluster(cluster, cluster, MODEL, settings, poll_seconds=0, coordination=cluster)
    return ks.deploy(model_path, MODEL, INSTANCE, candidate, cluster=handle,
                     rest=tf_serving(cluster, prediction)), handle


def test_first_deployment_serves_version_1(tmp_path, serving_root):
    cluster = FakeCluster()
    result, handle = _deploy(cluster, saved_model(tmp_path))
    assert result == {"model_name": MODEL, "action": "publish", "reason": "the first version", "version": 1,
                      "serving_version": 1, "previous_version": None, "prediction": [1234.5],
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
    assert ks.version_labels(MODEL, cluster=handle) == {"stable": 2}  # what the run view shows


def test_a_retried_candidate_is_not_published_again_and_a_stale_verdict_is_refused(tmp_path, serving_root):
    """Issue 29 under the Lease: the candidate's provenance is in its version's marker."""
    cluster = FakeCluster()
    first, handle = _deploy(cluster, saved_model(tmp_path, "a"), candidate={"run_id": "a", "rank": 0,
                                                                          "judged_against": None})
    v1 = ks.current_model(MODEL, cluster=handle)
    b = saved_model(tmp_path, "b")
    (Path(b) / "saved_model.pb").write_bytes(b"\x08\x02")  # another model: another fingerprint
    second, _ = _deploy(cluster, b, candidate={"run_id": "b", "rank": 1, "judged_against": v1})
    rollouts = len(cluster.rollouts)
    again, _ = _deploy(cluster, b, candidate={"run_id": "b", "rank": 1, "judged_against": v1})
    assert (again["action"], again["version"], again["serving_version"]) == ("already_published", 2, 2)
    stale, _ = _deploy(cluster, saved_model(tmp_path, "c"), candidate={"run_id": "c", "rank": 0,
                                                                      "judged_against": v1})
    assert (stale["action"], stale["version"]) == ("refused", None)
    assert stale["reason"].startswith("evaluated against v1; v2 serves now")
    assert len(cluster.rollouts) == rollouts and cluster.serving_version() == 2  # the cluster untouched
    assert sorted(p.name for p in (serving_root / MODEL).iterdir() if p.name.isdigit()) == ["1", "2"]
    assert json.loads((serving_root / MODEL / ".versions" / "2").read_text())["run_id"] == "b"


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
    handle = k8s_cluster.TFServingCluster(FakeCluster(), FakeCluster(), MODEL, k8s_settings.ServingSettings())
    assert ks.current_model(MODEL, cluster=handle) is None


def _config_volume(deployment):
    return next(v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")


# ---- object names: unique and valid for every allowed model name -----------------------------

def test_models_sharing_a_long_prefix_get_distinct_valid_names():
    import re

    from tune_serve.workflow.params import dag_params

    pattern = re.compile(dag_params()["model_name"].schema["pattern"])
    first, second = "a" * 40 + "-first-model", "a" * 40 + "-other-model"  # 52 characters each, allowed
    assert pattern.match(first) and pattern.match(second)
    names = {n: k8s_manifests.object_name(n) for n in (first, second, "a" * 52, "a", "x-" * 25 + "yz", "a" * 39 + "-b")}
    assert len(set(names.values())) == len(names)
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for model, name in names.items():
        assert dns_label.match(name) and len(name) <= 63, (model, name)  # a Service name is a DNS-1123 label
        assert dns_label.match(k8s_manifests.instance_labels(model)[k8s_manifests.INSTANCE_LABEL])


def test_names_outside_the_param_still_map_to_distinct_valid_names():
    import re

    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    models = ["Diamonds", "diamonds", "dia_monds", "dia.monds", "dia-monds", "a" * 80, "a" * 81, "-x-", "x" * 39 + "_"]
    names = [k8s_manifests.object_name(m) for m in models]
    assert len(set(names)) == len(models)
    assert all(dns_label.match(n) and len(n) <= 63 for n in names), names


def test_a_deployment_of_another_model_is_never_touched(tmp_path, serving_root):
    cluster = FakeCluster()
    _deploy(cluster, saved_model(tmp_path))
    # Another model whose objects would carry the same name (e.g. before names were unique)
    deployment = cluster.objects[("Deployment", k8s_manifests.object_name(MODEL))]
    deployment["metadata"]["annotations"][k8s_manifests.MODEL_ANNOTATION] = "someone-else"
    before = copy.deepcopy(cluster.objects)
    with pytest.raises(ModelRejected, match="belongs to model 'someone-else', not 'diamonds'"):
        _deploy(cluster, saved_model(tmp_path, "second"))
    assert cluster.objects == before
    assert not (serving_root / MODEL / "2").exists()


# ---- concurrent deployments of one model -----------------------------------------------------

def _model(tmp_path, name):
    path = saved_model(tmp_path, name)
    (Path(path) / "assets").mkdir()
    (Path(path) / "assets" / "source").write_text(name)  # tells the two SavedModels apart
    return path


def _contents(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) + ("=" + p.read_text() if p.name == "source" else "")
            for p in directory.rglob("*") if p.is_file()}


def _wait_until(predicate, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_two_deployments_of_one_model_take_turns(tmp_path, serving_root):
    import threading

    cluster = FakeCluster()
    settings = k8s_settings.ServingSettings(timeout_seconds=30, lease_seconds=3)
    canary_loading, go_on = threading.Event(), threading.Event()
    first_rest = tf_serving(cluster, 1.0)
    check_version = first_rest.wait_available

    def wait_available(version, timeout):  # the first deployment pauses here, holding the Lease
        canary_loading.set()
        assert go_on.wait(60)
        return check_version(version, timeout)

    first_rest.wait_available = wait_available
    results = {}

    def deploy(name, rest):
        handle = k8s_cluster.TFServingCluster(cluster, cluster, MODEL, settings, poll_seconds=0, coordination=cluster)
        try:
            results[name] = ks.deploy(_model(tmp_path, name), MODEL, INSTANCE, cluster=handle, rest=rest)
        except Exception as exc:  # noqa: BLE001 - reported by the asserts below
            results[name] = exc

    first = threading.Thread(target=deploy, args=("first", first_rest))
    first.start()
    assert canary_loading.wait(60)
    second = threading.Thread(target=deploy, args=("second", tf_serving(cluster, 2.0)))
    second.start()
    lease = f"{k8s_manifests.object_name(MODEL)}-deploy"
    _wait_until(lambda: cluster.calls.count(("get", "Lease", lease)) >= 2)  # it found the Lease held, twice
    assert len(cluster.rollouts) == 1 and sorted(p.name for p in (serving_root / MODEL).iterdir()
                                                 if p.name.isdigit()) == ["1"]  # and touched nothing
    go_on.set()
    first.join(120)
    second.join(120)

    assert (results["first"]["version"], results["first"]["previous_version"]) == (1, None), results
    assert (results["second"]["version"], results["second"]["previous_version"]) == (2, 1), results
    assert [r["labels"] for r in cluster.rollouts] == [{"canary": 1}, {"stable": 1}, {"stable": 1, "canary": 2},
                                                     {"stable": 2}]
    assert cluster.serving_state().labels == {"stable": 2}
    for version, name in ((1, "first"), (2, "second")):  # each version is one whole SavedModel
        assert _contents(serving_root / MODEL / str(version)) == _contents(tmp_path / name)
    assert not list((serving_root / MODEL).glob(".staging-*"))
    assert cluster.names("Lease") == []  # released


def _lease(cluster, holder, renewed_seconds_ago, duration=60):
    from datetime import datetime, timedelta

    renewed = (datetime.now(UTC) - timedelta(seconds=renewed_seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    cluster.create("Lease", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                             "metadata": {"name": f"{k8s_manifests.object_name(MODEL)}-deploy", "namespace": "tune-serve"},
                             "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                                      "acquireTime": renewed, "renewTime": renewed}})


def test_a_deployment_that_died_holding_the_lease_blocks_the_model_only_until_it_expires(tmp_path, serving_root):
    cluster = FakeCluster()
    _lease(cluster, "worker-1/4242/dead", renewed_seconds_ago=61)
    result, _ = _deploy(cluster, _model(tmp_path, "after-crash"))
    assert result["version"] == 1 and cluster.names("Lease") == []


def test_a_live_lease_makes_the_deployment_wait_then_give_up_untouched(tmp_path, serving_root):
    cluster = FakeCluster()
    _lease(cluster, "worker-2/77/alive", renewed_seconds_ago=0, duration=3600)
    settings = k8s_settings.ServingSettings(timeout_seconds=5, lease_seconds=1, lease_wait_seconds=0.3)
    handle = k8s_cluster.TFServingCluster(cluster, cluster, MODEL, settings, poll_seconds=0, coordination=cluster)
    with pytest.raises(ServingUnavailable, match="another deployment of diamonds is running: .* held by worker-2/77/alive"):
        ks.deploy(_model(tmp_path, "m"), MODEL, INSTANCE, cluster=handle, rest=tf_serving(cluster))
    assert cluster.names("Deployment") == [] and cluster.rollouts == []
    assert not (serving_root / MODEL).exists() or not [p for p in (serving_root / MODEL).iterdir()
                                                          if not p.name.startswith(".")]
    assert not list((serving_root / MODEL).glob(".staging-*"))


def test_a_version_number_claimed_by_another_deployment_is_never_reused(tmp_path, serving_root):
    base = serving_root / MODEL
    (base / ".versions").mkdir(parents=True)
    (base / ".versions" / "1").touch()  # claimed by a deployment still moving its copy in
    staged = k8s_versions.stage(_model(tmp_path, "m"), str(base))
    assert k8s_versions.VersionDir(str(base)).publish(staged) == 2
    assert (base / "2" / "assets" / "source").read_text() == "m" and not (base / "1").exists()


def test_the_fake_api_server_refuses_concurrent_writes_as_the_real_one_does():
    from kubernetes.client.exceptions import ApiException

    from tune_serve.kubernetes.lease import conflict_reason

    api = FakeCluster()
    body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l", "namespace": "ns"},
            "spec": {"holderIdentity": "a"}}
    created = api.create_namespaced_lease("ns", body)
    with pytest.raises(ApiException) as exists:
        api.create_namespaced_lease("ns", body)
    assert (exists.value.status, exists.value.reason, conflict_reason(exists.value)) == (409, "Conflict", "AlreadyExists")
    stale = created.metadata.resource_version
    api.replace_namespaced_lease("l", "ns", {**body, "metadata": {**body["metadata"], "resourceVersion": stale}})
    with pytest.raises(ApiException) as conflict:  # the same resourceVersion again: stale now
        api.replace_namespaced_lease("l", "ns", {**body, "metadata": {**body["metadata"], "resourceVersion": stale}})
    assert (conflict.value.status, conflict_reason(conflict.value)) == (409, "Conflict")
    assert "the object has been modified" in json.loads(conflict.value.body)["message"]
    with pytest.raises(ApiException) as precondition:
        api.delete_namespaced_lease("l", "ns", body={"preconditions": {"resourceVersion": stale}})
    assert (precondition.value.status, conflict_reason(precondition.value)) == (409, "Conflict")
    api.delete_namespaced_lease("l", "ns", body={"preconditions": {"resourceVersion": api.read_namespaced_lease(
        "l", "ns").metadata.resource_version}})
    with pytest.raises(ApiException) as missing:
        api.replace_namespaced_lease("l", "ns", body)
    assert (missing.value.status, missing.value.reason, conflict_reason(missing.value)) == (404, "Not Found", "NotFound")


def test_publishing_on_object_storage_claims_the_version_before_copying_it_in(tmp_path, monkeypatch):
    """The remote branch (GCS in production) on fsspec's in-memory filesystem: the claim is a
    create-if-absent write (`pipe_file(mode="create")`, ifGenerationMatch=0 on GCS)."""
    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    monkeypatch.setattr(k8s_versions, "_path", lambda uri: ObjectStoragePath(uri if "://" in uri else f"file://{uri}"))
    base = f"memory://serving-{uuid.uuid4().hex}/{MODEL}"
    ObjectStoragePath(f"{base}/.versions/1").write_bytes(b"")  # claimed by another deployment
    staged = k8s_versions.stage(_model(tmp_path, "remote"), base)
    assert k8s_versions.VersionDir(base, taken=()).publish(staged) == 2
    assert ObjectStoragePath(f"{base}/2/assets/source").read_text() == "remote"
    assert not ObjectStoragePath(f"{base}/1").exists() and not staged.exists()
    assert k8s_versions._create_if_absent(ObjectStoragePath(f"{base}/.versions/2")) is False


def test_the_readme_example_and_the_smoke_tests_send_the_same_body():
    """One body for every client: the README's curl example has the shape the smoke test sends
    (row format, one scalar per feature, no signature_name: TF Serving's serving_default)."""
    import re
    from pathlib import Path

    from tune_serve.serving.rest_client import predict_body

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [example] = set(re.findall(r"curl -d '(\{.*?\})'", readme))  # every example asks with the same row
    body = json.loads(example)
    [instance] = body["instances"]
    assert body == predict_body([instance])
    assert "signature_name" not in body
    assert set(instance) == {"carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"}
    assert all(not isinstance(v, (list, dict)) for v in instance.values())
