"""KubernetesPodOperator (and GKEStartPodOperator) that tell a preemption from a failure.

KubernetesPodOperator raises one plain AirflowException for every failed pod and knows
nothing of DisruptionTarget. Its `cleanup()` sees the final pod on both the sync and the
deferrable path; here it re-reads the pod if the copy it was given is not final, lets the
provider do its own cleanup (XCom push, logs, events, deletion) and re-raises the
failure as `PodPreempted` (retried by `preemption.retry_policy()`) or `PodFailed`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.container import container_is_succeeded
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodNotFoundException
from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from kubernetes.client.exceptions import ApiException

from tune_serve.kubernetes.oracle import mount_search_secret, oracle_names
from tune_serve.kubernetes.pods import RUN_LABEL, bound_xcom_sidecar, run_slug
from tune_serve.links import POD_TASK_LINKS
from tune_serve.preemption import PodFailed, PodPreempted, classify

if TYPE_CHECKING:
    from kubernetes.client import V1Pod

_TERMINAL_PHASES = ("Succeeded", "Failed")


class PreemptionAwarePodMixin:
    """Turns KubernetesPodOperator's failure into PodPreempted or PodFailed."""

    def cleanup(self, pod: V1Pod, remote_pod: V1Pod | None, xcom_result: Any = None, context=None) -> None:
        if self._killed:  # the task itself was stopped (UI, timeout): nothing to classify
            return super().cleanup(pod=pod, remote_pod=remote_pod, xcom_result=xcom_result, context=context)
        submitted = self.pod is not None  # False when creating the pod failed (a real error)
        final = self._final_pod(remote_pod) if submitted else remote_pod
        if submitted and final is None:
            raise classify(None, self.base_container_name).exception(_name(pod))
        try:
            super().cleanup(pod=pod, remote_pod=final, xcom_result=xcom_result, context=context)
        except (AirflowSkipException, PodPreempted, PodFailed):
            raise
        except AirflowException as exc:
            verdict = classify(final, self.base_container_name)
            self.log.error("Pod %s %s: %s", _name(pod), "preempted" if verdict.preempted else "failed",
                           verdict.reason)
            raise verdict.exception(_name(pod)) from exc

    def trigger_reentry(self, context, event: dict[str, Any]) -> Any:
        try:
            return super().trigger_reentry(context, event)
        except PodNotFoundException as exc:  # gone before the task resumed from the triggerer
            raise classify(None).exception(event.get("name")) from exc
        except (AirflowSkipException, PodPreempted, PodFailed):
            raise
        except AirflowException as exc:
            if self.pod is None:  # vanished between the trigger's event and the cleanup
                raise classify(None).exception(event.get("name")) from exc
            raise

    def _final_pod(self, remote_pod: V1Pod | None) -> V1Pod | None:
        """The pod as the cluster last reported it; None when it no longer exists."""
        if remote_pod is not None and remote_pod.status is not None and (
                remote_pod.status.phase in _TERMINAL_PHASES
                or container_is_succeeded(remote_pod, self.base_container_name)):  # done; only the sidecar left
            return remote_pod
        try:
            return self.pod_manager.read_pod(self.pod)
        except ApiException as exc:
            if exc.status == 404:
                return None
            self.log.warning("Could not re-read pod %s (%s); classifying the last copy", _name(self.pod), exc.reason)
            return remote_pod


class SearchSecretPodMixin:
    """A tuner pod: the run's search secret mounted (the chief refuses calls without it) and
    the run's label, which the chief's NetworkPolicy admits."""

    def build_pod_request_obj(self, context=None, *, dry_run: bool = False) -> V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        pod.metadata.labels = {**(pod.metadata.labels or {}), RUN_LABEL: run_slug(dag_id, run_id)}
        mount_search_secret(pod.spec, oracle_names(dag_id, run_id)["secret"])
        return pod


class BoundedXComSidecarMixin:
    """The pod with the XCom sidecar's resources and volume bounded (`pods.bound_xcom_sidecar`)."""

    def build_pod_request_obj(self, context=None, **kwargs) -> V1Pod:
        return bound_xcom_sidecar(super().build_pod_request_obj(context, **kwargs))


class TrainerPodOperator(PreemptionAwarePodMixin, BoundedXComSidecarMixin, KubernetesPodOperator):
    """One trainer step in a pod, through an Airflow Kubernetes connection."""

    operator_extra_links = (*KubernetesPodOperator.operator_extra_links, *POD_TASK_LINKS)


class GKETrainerPodOperator(PreemptionAwarePodMixin, BoundedXComSidecarMixin, GKEStartPodOperator):
    """One trainer step in a pod on GKE (cluster endpoint and credentials from the Google connection)."""

    operator_extra_links = (*GKEStartPodOperator.operator_extra_links, *POD_TASK_LINKS)


class TunerPodOperator(SearchSecretPodMixin, TrainerPodOperator):
    """A Keras Tuner worker's pod, through an Airflow Kubernetes connection."""


class GKETunerPodOperator(SearchSecretPodMixin, GKETrainerPodOperator):
    """A Keras Tuner worker's pod on GKE."""


def _name(pod: V1Pod | None) -> str | None:
    return pod.metadata.name if pod is not None and pod.metadata is not None else None
