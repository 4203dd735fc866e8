"""Helpers of the test_k8s_* tests: the DAG built for a cluster backend, and pod statuses
shaped as a cluster reports them (kubernetes.client models, as the provider receives them)."""
from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path

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

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


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
