"""Helpers of the test_k8s_* tests: the DAG built for a cluster backend, pod statuses shaped
as a cluster reports them (kubernetes.client models, as the provider receives them), and an
API server's object store with its concurrency rules (`FakeApiServer`)."""
from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes.client import models as k8s

REPO = Path(__file__).resolve().parents[2]
CLUSTER_ENV = {
    "TUNE_SERVE_STORAGE_ROOT": "gs://tune-serve-test/storage",
    "TUNE_SERVE_SERVING_ROOT": "gs://tune-serve-test/serving",
    "TUNE_SERVE_GKE_PROJECT": "ml-project",
    "TUNE_SERVE_GKE_LOCATION": "europe-west4",
    "TUNE_SERVE_GKE_CLUSTER": "ml",
}


@contextlib.contextmanager
def cluster_backend(backend: str = "kubernetes", **env: str):
    """Settings of a cluster backend while inside (config.backend() is cached per process)."""
    from tune_serve import config

    wanted = {**CLUSTER_ENV, "TUNE_SERVE_BACKEND": backend, **env}
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    config.backend.cache_clear()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.backend.cache_clear()


def load_dag(backend: str = "kubernetes", **env: str):
    """The real DAG file, parsed as the DAG processor parses it, with `backend` configured."""
    from airflow.dag_processing.dagbag import DagBag

    with cluster_backend(backend, **env):
        bag = DagBag(dag_folder=str(REPO / "dags" / "tune_train_serve.py"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags["tune_train_serve"]


# ---- pod statuses ---------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def condition(type_: str, status: str = "True", reason: str | None = None, message: str | None = None):
    return k8s.V1PodCondition(type=type_, status=status, reason=reason, message=message,
                              last_transition_time=NOW)


def terminated(exit_code: int, reason: str = "Error", message: str | None = None, name: str = "base"):
    return k8s.V1ContainerStatus(
        name=name, image="ghcr.io/tune-serve/trainer:0.1.0", image_id="ghcr.io/tune-serve/trainer@sha256:0",
        ready=False, restart_count=0, started=False,
        state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
            exit_code=exit_code, reason=reason, message=message, started_at=NOW, finished_at=NOW)))


def running(name: str = "base"):
    return k8s.V1ContainerStatus(name=name, image="alpine", image_id="alpine@sha256:0", ready=True, restart_count=0,
                                 started=True, state=k8s.V1ContainerState(running=k8s.V1ContainerStateRunning(
                                     started_at=NOW)))


def pod(phase: str, *, reason: str | None = None, message: str | None = None, conditions=(), containers=(),
        deleting: bool = False, name: str = "tune-abc123") -> k8s.V1Pod:
    return k8s.V1Pod(
        api_version="v1", kind="Pod",
        metadata=k8s.V1ObjectMeta(name=name, namespace="tune-serve", uid="3f1c",
                                  labels={"dag_id": "tune_train_serve", "task_id": "tuning.tune", "map_index": "0"},
                                  deletion_timestamp=NOW if deleting else None,
                                  deletion_grace_period_seconds=30 if deleting else None),
        spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="ghcr.io/tune-serve/trainer:0.1.0")],
                           node_name="gke-ml-spot-gpu-1a2b"),
        status=k8s.V1PodStatus(phase=phase, reason=reason, message=message, conditions=list(conditions),
                               container_statuses=list(containers), host_ip="10.0.0.7", start_time=NOW))


def waiting(reason: str, message: str | None = None, name: str = "base"):
    return k8s.V1ContainerStatus(name=name, image="ghcr.io/tune-serve/trainer:0.1.0", image_id="", ready=False,
                                 restart_count=0, started=False,
                                 state=k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason=reason,
                                                                                                message=message)))


# ---- an API server's object store ---------------------------------------------------------------

class _HTTPResponse:
    """What kubernetes.client's ApiException reads from a failed call."""

    def __init__(self, status: int, reason: str, body: dict):
        self.status, self.reason, self.data = status, reason, json.dumps(body)

    def getheaders(self):
        return {"Content-Type": "application/json"}


def api_error(code: int, reason: str, message: str):
    """ApiException as kubernetes.client raises it: the HTTP reason phrase, and the API server's
    Status in the body, whose `reason` tells AlreadyExists from Conflict (both HTTP 409)."""
    from kubernetes.client.exceptions import ApiException

    phrase = {404: "Not Found", 409: "Conflict", 422: "Unprocessable Entity"}[code]
    return ApiException(http_resp=_HTTPResponse(code, phrase, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
        "reason": reason, "code": code}))


# kind -> (plural.group as the API server names it in messages, model type)
RESOURCES = {
    "ConfigMap": ("configmaps", "V1ConfigMap"),
    "Service": ("services", "V1Service"),
    "Deployment": ("deployments.apps", "V1Deployment"),
    "Lease": ("leases.coordination.k8s.io", "V1Lease"),
}


class FakeApiServer:
    """Namespaced objects by (kind, name), with the API server's rules for concurrent writers:
    create of an existing name → 409 AlreadyExists; update (PUT) or patch carrying a
    `metadata.resourceVersion` other than the stored one → 409 Conflict; delete with a
    resourceVersion/uid precondition that does not hold → 409 Conflict; update, patch or delete
    of a missing object → 404 NotFound. Every write gets a new resourceVersion. Thread-safe."""

    def __init__(self):
        import threading

        self.objects: dict[tuple[str, str], dict] = {}
        self.lock = threading.RLock()
        self.calls: list[tuple[str, str, str]] = []  # (verb, kind, name), e.g. to wait for a contender
        self._version = 1000
        self._uids = 0

    # -- generic verbs
    def create(self, kind: str, body) -> Any:
        body = _plain(body)
        name = body["metadata"]["name"]
        with self.lock:
            self.calls.append(("create", kind, name))
            if (kind, name) in self.objects:
                raise api_error(409, "AlreadyExists", f'{RESOURCES[kind][0]} "{name}" already exists')
            if body["metadata"].get("resourceVersion"):
                raise api_error(422, "Invalid", "metadata.resourceVersion: Invalid value: must be empty on create")
            self._uids += 1
            body["metadata"].update(uid=f"uid-{self._uids}", generation=1, resourceVersion=self._next())
            self.objects[(kind, name)] = body
            return self._typed(kind, body)

    def read(self, kind: str, name: str) -> Any:
        with self.lock:
            self.calls.append(("get", kind, name))
            return self._typed(kind, self._existing(kind, name))

    def replace(self, kind: str, name: str, body) -> Any:
        body = _plain(body)
        with self.lock:
            self.calls.append(("update", kind, name))
            current = self._existing(kind, name)
            self._check_version(kind, name, current, body["metadata"].get("resourceVersion"))
            body["metadata"].update(uid=current["metadata"]["uid"], resourceVersion=self._next(),
                                    generation=current["metadata"]["generation"]
                                    + (body.get("spec") != current.get("spec")))
            self.objects[(kind, name)] = body
            return self._typed(kind, body)

    def patch(self, kind: str, name: str, body) -> Any:
        """A merge patch of metadata and spec (what the callers here send)."""
        body = _plain(body)
        with self.lock:
            self.calls.append(("patch", kind, name))
            current = self._existing(kind, name)
            self._check_version(kind, name, current, body.get("metadata", {}).get("resourceVersion"))
            patched = json.loads(json.dumps(current))
            for key, value in body.items():
                if isinstance(value, dict) and isinstance(patched.get(key), dict):
                    patched[key] = {**patched[key], **value}
                else:
                    patched[key] = value
            patched["metadata"].update(uid=current["metadata"]["uid"], resourceVersion=self._next(),
                                       generation=current["metadata"]["generation"]
                                       + (patched.get("spec") != current.get("spec")))
            self.objects[(kind, name)] = patched
            return self._typed(kind, patched)

    def delete(self, kind: str, name: str, body=None) -> Any:
        preconditions = (_plain(body) or {}).get("preconditions") or {}
        with self.lock:
            self.calls.append(("delete", kind, name))
            current = self._existing(kind, name)
            for key, field in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
                wanted = preconditions.get(key)
                if wanted is not None and wanted != current["metadata"][key]:
                    raise api_error(409, "Conflict", f"Precondition failed: {field} in precondition: {wanted}, "
                                                     f"{field} in object meta: {current['metadata'][key]}")
            del self.objects[(kind, name)]
            return self._typed_status()

    def list(self, kind: str, label_selector: str | None = None) -> list[dict]:
        wanted = dict(pair.split("=") for pair in label_selector.split(",")) if label_selector else {}
        with self.lock:
            return [json.loads(json.dumps(o)) for (k, _), o in sorted(self.objects.items())
                    if k == kind and wanted.items() <= o["metadata"].get("labels", {}).items()]

    def names(self, kind: str) -> list[str]:
        with self.lock:
            return sorted(name for k, name in self.objects if k == kind)

    # -- CoordinationV1Api
    def create_namespaced_lease(self, namespace, body, **_):
        return self.create("Lease", body)

    def read_namespaced_lease(self, name, namespace, **_):
        return self.read("Lease", name)

    def replace_namespaced_lease(self, name, namespace, body, **_):
        return self.replace("Lease", name, body)

    def delete_namespaced_lease(self, name, namespace, body=None, **_):
        return self.delete("Lease", name, body)

    # -- the rules
    def _existing(self, kind, name) -> dict:
        if (kind, name) not in self.objects:
            raise api_error(404, "NotFound", f'{RESOURCES[kind][0]} "{name}" not found')
        return self.objects[(kind, name)]

    @staticmethod
    def _check_version(kind, name, current, given) -> None:
        if given is not None and given != current["metadata"]["resourceVersion"]:
            raise api_error(409, "Conflict", f'Operation cannot be fulfilled on {RESOURCES[kind][0]} "{name}": the '
                                             "object has been modified; please apply your changes to the latest "
                                             "version and try again")

    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    @staticmethod
    def _typed(kind, body):
        return _deserialize(json.loads(json.dumps(body)), RESOURCES[kind][1])

    @staticmethod
    def _typed_status():
        return _deserialize({"apiVersion": "v1", "kind": "Status", "status": "Success"}, "V1Status")


def _plain(body):
    """A request body as JSON (the client sends models sanitized, dicts as they are)."""
    if body is None or isinstance(body, dict):
        return json.loads(json.dumps(body, default=str)) if body is not None else None
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(body)


def _deserialize(data: dict, type_name: str):
    from kubernetes.client import ApiClient

    class _Response:
        def __init__(self, payload):
            self.data = json.dumps(payload)

    return ApiClient().deserialize(_Response(data), type_name)
