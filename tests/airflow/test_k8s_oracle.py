"""The chief on a cluster: Job + Service started, awaited, removed, on a fake API."""
import json
from types import SimpleNamespace
from unittest import mock

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from tune_serve.errors import PodFailed
from tune_serve.kubernetes import oracle
from tune_serve.workflow.podspec import PodTask

RUN_ID = "manual__2026-01-01T00:00:00+00:00"


class FakeBatch:
    def __init__(self):
        self.jobs, self.deleted = {}, []
        self.api_client = ApiClient()

    def create_namespaced_job(self, body, namespace, **_):
        if body["metadata"]["name"] in self.jobs:
            raise ApiException(status=409, reason="AlreadyExists")
        job = ApiClient().deserialize(SimpleNamespace(data=json.dumps(body)), "V1Job")
        job.metadata.uid = "9d2e"
        self.jobs[job.metadata.name] = job
        return job

    def read_namespaced_job(self, name, namespace, **_):
        if name not in self.jobs:
            raise ApiException(status=404, reason="Not Found")
        return self.jobs[name]

    read_namespaced_job_status = read_namespaced_job

    def delete_namespaced_job(self, name, namespace, propagation_policy=None, **_):
        self.deleted.append((name, propagation_policy))
        if self.jobs.pop(name, None) is None:
            raise ApiException(status=404, reason="Not Found")


class FakeCore:
    def __init__(self, fail_with=None):
        self.services, self.secrets, self.fail_with, self.deleted = {}, {}, fail_with, []

    def create_namespaced_service(self, namespace, body):
        if self.fail_with:
            raise ApiException(status=self.fail_with, reason="boom")
        if body["metadata"]["name"] in self.services:
            raise ApiException(status=409, reason="AlreadyExists")
        self.services[body["metadata"]["name"]] = body

    def create_namespaced_secret(self, namespace, body):
        if body["metadata"]["name"] in self.secrets:
            raise ApiException(status=409, reason="AlreadyExists")
        self.secrets[body["metadata"]["name"]] = body

    def delete_namespaced_service(self, name, namespace):
        self.deleted.append(name)
        if self.services.pop(name, None) is None:
            raise ApiException(status=404, reason="Not Found")


class FakeNetworking:
    def __init__(self, fail_with=None):
        self.policies, self.fail_with = {}, fail_with

    def create_namespaced_network_policy(self, namespace, body):
        if self.fail_with:
            raise ApiException(status=self.fail_with, reason="Forbidden")
        if body["metadata"]["name"] in self.policies:
            raise ApiException(status=409, reason="AlreadyExists")
        self.policies[body["metadata"]["name"]] = body


class FakeHook:
    """KubernetesHook's surface the chief's operators use, over fake API clients."""

    is_in_cluster = False
    is_job_complete = KubernetesHook.is_job_complete
    is_job_failed = staticmethod(KubernetesHook.is_job_failed)
    log = mock.MagicMock()

    def __init__(self, core=None):
        self.batch_v1_client, self.core_v1_client = FakeBatch(), core or FakeCore()

    def get_namespace(self):
        return None

    def create_job(self, job):
        return self.batch_v1_client.create_namespaced_job(ApiClient().sanitize_for_serialization(job),
                                                          job.metadata.namespace)

    def get_job(self, job_name, namespace):
        return self.batch_v1_client.read_namespaced_job(job_name, namespace)

    get_job_status = get_job


def _context(task_id="tuning.start_oracle"):
    ti = mock.MagicMock(dag_id="tune_train_serve", task_id=task_id, map_index=-1, try_number=1, run_id=RUN_ID)
    return {"dag": SimpleNamespace(dag_id="tune_train_serve"), "run_id": RUN_ID, "ti": ti}


RUN_ROOT = "gs://bucket/runs/r1"


def _start(hook, run_root=RUN_ROOT, networking=None):
    op = oracle.KubernetesStartOracleOperator(task_id="start_oracle", namespace="tune-serve", image="trainer:1",
                                    cmds=PodTask("start_oracle", "oracle").command,
                                    oracle_args={"run_root": run_root, "max_trials": 6}, oracle_port=8000)
    op.__dict__["hook"] = hook
    op.__dict__["networking"] = hook.networking = getattr(hook, "networking", None) or networking or FakeNetworking()
    return op


def test_start_creates_the_job_and_a_service_owned_by_it():
    hook = FakeHook()
    handle = _start(hook).execute(_context())
    names = oracle.oracle_names("tune_train_serve", RUN_ID)
    assert handle == {"address": f"{names['service']}.tune-serve.svc.cluster.local:8000", "job": names["job"],
                      "service": names["service"], "secret": names["secret"],
                      "network_policy": names["network_policy"], "namespace": "tune-serve",
                      "result_uri": "gs://bucket/runs/r1/tuning/oracle_result.json"}
    job = hook.batch_v1_client.jobs[names["job"]]
    args = job.spec.template.spec.containers[0].args
    assert args[:2] == [f"--run-root={RUN_ROOT}", f"--xcom-file={handle['result_uri']}"]
    assert {"--max-trials=6", "--port=8000", "--bind=0.0.0.0"} <= set(args)
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": names["job"], "uid": "9d2e"}
    service = hook.core_v1_client.services[names["service"]]
    assert service["metadata"]["ownerReferences"][0] == owner
    assert service["spec"]["selector"].items() <= job.spec.template.metadata.labels.items()


def test_start_makes_a_search_secret_only_the_chief_and_its_tuners_get():
    hook = FakeHook()
    handle = _start(hook).execute(_context())
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": handle["job"], "uid": "9d2e"}
    secret = hook.core_v1_client.secrets[handle["secret"]]
    token = secret["stringData"]["token"]
    assert len(token) >= 32 and secret["immutable"] is True
    assert secret["metadata"]["ownerReferences"] == [owner]  # goes with the Job
    pod = hook.batch_v1_client.jobs[handle["job"]].spec.template.spec
    volume = next(v for v in pod.volumes if v.name == oracle.SECRET_VOLUME)
    assert volume.secret.secret_name == handle["secret"] and volume.secret.default_mode == 0o440
    (base,) = pod.containers
    assert {(m.name, m.mount_path, m.read_only) for m in base.volume_mounts} >= {
        (oracle.SECRET_VOLUME, oracle.SECRET_MOUNT, True)}
    assert {e.name: e.value for e in base.env}["KERASTUNER_ORACLE_SECRET_FILE"] == f"{oracle.SECRET_MOUNT}/token"
    assert token not in json.dumps(ApiClient().sanitize_for_serialization(hook.batch_v1_client.jobs[handle["job"]]))
    assert token not in json.dumps(handle)  # never in XCom

    policy = hook.networking.policies[handle["network_policy"]]
    assert policy["metadata"]["ownerReferences"] == [owner]
    chief_labels = hook.batch_v1_client.jobs[handle["job"]].spec.template.metadata.labels
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= chief_labels.items()
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "tune",
                                                             "tune-serve/run": chief_labels["tune-serve/run"]}}}]

    _start(hook).execute(_context())  # a retried start keeps the secret the chief already reads
    assert hook.core_v1_client.secrets[handle["secret"]]["stringData"]["token"] == token


def test_a_network_policy_that_cannot_be_made_takes_the_job_with_it():
    hook = FakeHook()
    with pytest.raises(ApiException):
        _start(hook, networking=FakeNetworking(fail_with=403)).execute(_context())
    assert hook.batch_v1_client.jobs == {}


def test_a_retried_start_keeps_the_chief_it_started():
    hook = FakeHook()
    first = _start(hook).execute(_context())
    assert _start(hook).execute(_context()) == first  # 409s: the Job and Service exist already
    assert len(hook.batch_v1_client.jobs) == 1


def test_a_service_that_cannot_be_made_takes_its_job_with_it():
    hook = FakeHook(core=FakeCore(fail_with=403))
    with pytest.raises(ApiException):
        _start(hook).execute(_context())
    assert hook.batch_v1_client.jobs == {}


def _sensor(hook, handle):
    sensor = oracle.KubernetesWaitOracleSensor(task_id="wait_oracle", handle=handle, timeout=60, poke_interval=1)
    sensor.__dict__["hook"] = hook
    return sensor


def _finish(hook, handle, condition_type, reason=None, message=None):
    job = hook.batch_v1_client.jobs[handle["job"]]
    job.status = k8s.V1JobStatus(conditions=[k8s.V1JobCondition(type=condition_type, status="True", reason=reason,
                                                                message=message)])


def test_wait_returns_the_result_the_chief_left_in_shared_storage(tmp_path):
    hook = FakeHook()
    handle = _start(hook, run_root=str(tmp_path)).execute(_context())
    sensor = _sensor(hook, handle)
    assert sensor.poke({}) is False
    (tmp_path / "tuning").mkdir()
    (tmp_path / "tuning" / "oracle_result.json").write_text(json.dumps({"completed": 6, "max_trials": 6, "trials": []}))
    _finish(hook, handle, "Complete")
    assert sensor.poke({}).xcom_value == {"completed": 6, "max_trials": 6, "trials": []}


def test_a_failed_chief_fails_the_wait_without_retries(tmp_path):
    hook = FakeHook()
    handle = _start(hook, run_root=str(tmp_path)).execute(_context())
    _finish(hook, handle, "Failed", "PodFailurePolicy",
            "Container base for pod tune-serve/oracle-x exited with code 2 matching FailJob rule at index 1")
    with pytest.raises(PodFailed, match="exited with code 2"):
        _sensor(hook, handle).poke({})
    with pytest.raises(PodFailed, match="BackoffLimitExceeded"):
        _sensor(hook, handle).execute_complete({}, {"status": "error", "message": "Job failed with error: "
                                                    "BackoffLimitExceeded"})


def test_stop_deletes_job_pods_and_service_and_tolerates_what_is_gone():
    hook = FakeHook()
    handle = _start(hook).execute(_context())
    stop = oracle.KubernetesStopOracleOperator(task_id="stop_oracle", handle=handle, namespace="tune-serve")
    stop.__dict__["hook"] = hook
    stop.execute(_context("tuning.stop_oracle"))
    assert hook.batch_v1_client.deleted == [(handle["job"], "Background")]  # pods go with the Job
    assert hook.batch_v1_client.jobs == {} and hook.core_v1_client.services == {}
    # start_oracle failed before returning a handle: the run's names are found all the same
    stop.handle = None
    stop.execute(_context("tuning.stop_oracle"))
    assert hook.batch_v1_client.deleted[-1] == (handle["job"], "Background")
