"""KubernetesPodOperator (and GKEStartPodOperator) that tell a preemption from a failure and
read their result from the run's storage.

KubernetesPodOperator raises one plain AirflowException for every failed pod and knows
nothing of DisruptionTarget. Its `cleanup()` sees the final pod on both the sync and the
deferrable path; here it re-reads the pod if the copy it was given is not final, lets the
provider do its own cleanup (logs, events, deletion) and re-raises the
failure as `PodPreempted` (retried by `preemption.retry_policy()`) or `PodFailed`.

The result is never read through the provider's XCom sidecar (that needs `pods/exec`, see
`tune_serve.kubernetes.results`): `ResultFileMixin` points the step at a file under the run root
and pushes that file's JSON once the pod succeeded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.container import container_is_succeeded
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodNotFoundException
from airflow.providers.google.cloud.operators.kubernetes_engine import GKEStartPodOperator
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from tune_serve.kubernetes import results
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.oracle import mount_search_secret, oracle_names, read_result
from tune_serve.kubernetes.pods import RUN_LABEL, run_slug
from tune_serve.workflow.links import POD_TASK_LINKS
from tune_serve.workflow.preemption import PodFailed, PodPreempted, classify

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
                # done; only the sidecar left
                or container_is_succeeded(remote_pod, self.base_container_name)):
            return remote_pod
        try:
            return self.pod_manager.read_pod(self.pod)
        except ApiException as exc:
            if exc.status == 404:
                return None
            self.log.warning("Could not re-read pod %s (%s); classifying the last copy",
                             _name(self.pod), exc.reason)
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


class ResultFileMixin:
    """The step's result through storage, not the XCom sidecar (built with do_xcom_push=False).

    Airflow pushes a return value only when do_xcom_push is True, and the provider reads that
    same flag as "add the sidecar", so the result is pushed here as `return_value` itself."""

    def build_pod_request_obj(self, context=None, **kwargs) -> V1Pod:
        pod = super().build_pod_request_obj(context, **kwargs)
        if context is not None:  # a task instance's pod: its own result file
            base = next(c for c in pod.spec.containers if c.name == self.base_container_name)
            uri = results.task_result_uri(self.arguments, context["ti"])
            base.env = [*(e for e in base.env or [] if e.name != results.XCOM_FILE_ENV),
                        k8s.V1EnvVar(name=results.XCOM_FILE_ENV, value=uri)]
        return pod

    def execute(self, context) -> Any:
        super().execute(context)  # returns once the pod succeeded (or defers, raising TaskDeferred)
        return self._push_result(context)

    def trigger_reentry(self, context, event: dict[str, Any]) -> Any:
        super().trigger_reentry(context, event)  # raises unless the pod succeeded
        return self._push_result(context)

    def _push_result(self, context) -> Any:
        uri = results.task_result_uri(self.arguments, context["ti"])
        result = read_result(uri, cluster_settings.load().gcp_conn_id)
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=result)
        return result


class KubernetesTrainerPodOperator(PreemptionAwarePodMixin, ResultFileMixin, KubernetesPodOperator):
    """One trainer step in a pod, through an Airflow Kubernetes connection."""

    operator_extra_links = (*KubernetesPodOperator.operator_extra_links, *POD_TASK_LINKS)


class GKETrainerPodOperator(PreemptionAwarePodMixin, ResultFileMixin, GKEStartPodOperator):
    """One trainer step in a pod on GKE (cluster endpoint and credentials from the Google connection)."""

    operator_extra_links = (*GKEStartPodOperator.operator_extra_links, *POD_TASK_LINKS)


class KubernetesTunerPodOperator(SearchSecretPodMixin, KubernetesTrainerPodOperator):
    """A Keras Tuner worker's pod, through an Airflow Kubernetes connection."""


class GKETunerPodOperator(SearchSecretPodMixin, GKETrainerPodOperator):
    """A Keras Tuner worker's pod on GKE."""


def _name(pod: V1Pod | None) -> str | None:
    return pod.metadata.name if pod is not None and pod.metadata is not None else None
