"""Kubernetes and GKE backend: every pod task is a pod, the chief a Job plus a Service.

`kubernetes` talks to the cluster through an Airflow Kubernetes connection
(KubernetesPodOperator); `gke` through a Google Cloud connection and the cluster's
project/location/name (GKEStartPodOperator). The pod itself is the same: see
`tune_serve.kubernetes.pods` for the rules and `tune_serve.kubernetes.settings` for every setting.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule

from tune_serve.kubernetes import oracle
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.operators import (
    GKETrainerPodOperator,
    GKETunerPodOperator,
    KubernetesTrainerPodOperator,
    KubernetesTunerPodOperator,
)
from tune_serve.kubernetes.pods import pod_kwargs
from tune_serve.kubernetes.serving import current_model, deploy, version_labels
from tune_serve.workflow import task_ids
from tune_serve.workflow.backend import Arguments, Handle, OracleFields
from tune_serve.workflow.podspec import PodTask
from tune_serve.workflow.preemption import retry_policy

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.definitions.mappedoperator import OperatorPartial


def _retries(spec: PodTask, *, pod: bool = True) -> dict[str, Any]:
    """A pod task retries preemptions only; the chief's API-level tasks retry as usual."""
    return dict(
        retries=spec.retries, retry_delay=spec.retry_delay, retry_exponential_backoff=True,
        max_retry_delay=spec.max_retry_delay, **({"retry_policy": retry_policy()} if pod else {}),
        **({"pool": spec.pool} if spec.pool else {}),
    )


def _connection(s: cluster_settings.ClusterSettings) -> dict[str, Any]:
    """How the operator reaches the cluster: a Kubernetes connection, or GKE by name."""
    if not s.is_gke:
        return {"kubernetes_conn_id": s.kubernetes_conn_id}
    missing = [name for name, value in (("gke_location", s.gke_location), ("gke_cluster", s.gke_cluster))
               if not value]
    if missing:
        raise ValueError(f"backend gke needs {', '.join('TUNE_SERVE_' + m.upper() for m in missing)}")
    return {"project_id": s.gke_project, "location": s.gke_location, "cluster_name": s.gke_cluster,
            "gcp_conn_id": s.gcp_conn_id, "use_internal_ip": s.gke_use_internal_ip}


def _pod_operator_class(s: cluster_settings.ClusterSettings, spec: PodTask):
    if spec.step == "tune":  # a tuner: gets the run's search secret and the label the chief admits
        return GKETunerPodOperator if s.is_gke else KubernetesTunerPodOperator
    return GKETrainerPodOperator if s.is_gke else KubernetesTrainerPodOperator


def _pod_task_kwargs(spec: PodTask, s: cluster_settings.ClusterSettings) -> dict[str, Any]:
    return {"task_id": spec.task_id, **pod_kwargs(spec, s), **_connection(s), **_retries(spec)}


def pod_operator(spec: PodTask, *, arguments: Arguments | None = None) -> BaseOperator:
    s = cluster_settings.load()
    return _pod_operator_class(s, spec)(**{
        **_pod_task_kwargs(spec, s),
        "arguments": list(spec.arguments) if arguments is None else arguments})


def mapped_pod_operator(spec: PodTask) -> OperatorPartial:
    s = cluster_settings.load()
    return _pod_operator_class(s, spec).partial(**_pod_task_kwargs(spec, s))


def start_oracle(spec: PodTask, oracle_args: OracleFields) -> BaseOperator:
    s = cluster_settings.load()
    task = {**_pod_task_kwargs(spec, s), **_retries(spec, pod=False)}
    task.pop("retry_policy")
    for pod_only in ("do_xcom_push", "get_logs", "name"):
        task.pop(pod_only)  # the chief's result goes to shared storage too (oracle.result_uri)
    task.update(backoff_limit=s.oracle_restarts, oracle_port=s.oracle_port, deferrable=False)
    operator = oracle.GKEStartOracleOperator if s.is_gke else oracle.KubernetesStartOracleOperator
    return operator(**{**task, "oracle_args": oracle_args})


def wait_oracle(spec: PodTask, handle: Handle) -> BaseOperator:
    s = cluster_settings.load()
    sensor = oracle.GKEWaitOracleSensor if s.is_gke else oracle.KubernetesWaitOracleSensor
    return sensor(**{
        "task_id": task_ids.in_group(task_ids.WAIT_ORACLE), "handle": handle, **_connection(s),
        "storage_conn_id": s.gcp_conn_id, "deferrable": s.deferrable,
        "poke_interval": s.poll_interval_seconds, "timeout": spec.deadline.total_seconds(),
        **_retries(spec, pod=False)})


def stop_oracle(handle: Handle) -> BaseOperator:
    s = cluster_settings.load()
    operator = oracle.GKEStopOracleOperator if s.is_gke else oracle.KubernetesStopOracleOperator
    return operator(**{"task_id": task_ids.in_group(task_ids.STOP_ORACLE), "handle": handle,
                       "namespace": s.namespace, **_connection(s),
                       "retries": 3, "trigger_rule": TriggerRule.ALL_DONE})


__all__ = ["pod_operator", "mapped_pod_operator", "start_oracle", "wait_oracle", "stop_oracle", "deploy",
           "current_model", "version_labels"]
