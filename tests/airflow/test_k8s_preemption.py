"""Preempted or failed, from final pod statuses shaped as a cluster reports them.

Shapes follow the Kubernetes documentation on pod disruption conditions (DisruptionTarget
and its reasons), graceful node shutdown (reason Terminated, "Pod was terminated in response
to imminent node shutdown.") and node-pressure eviction (reason Evicted, "The node was low
on resource: memory.").
"""
from unittest import mock

import pytest
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodNotFoundException
from airflow.sdk import RetryAction
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from k8s_testing import condition, pod, running, terminated, waiting
from kubernetes.client.exceptions import ApiException

from tune_serve.kubernetes.operators import KubernetesTrainerPodOperator
from tune_serve.workflow.preemption import PodFailed, PodPreempted, classify, retry_policy

SHUTDOWN = "Pod was terminated in response to imminent node shutdown."

PREEMPTED = {
    "graceful node shutdown (spot reclaim)": pod(
        "Failed", reason="Terminated", message=SHUTDOWN,
        conditions=[condition("DisruptionTarget", reason="TerminationByKubelet", message=SHUTDOWN),
                    condition("Ready", "False", reason="PodFailed")],
        containers=[terminated(137, "Error"), terminated(0, "Completed", name="airflow-xcom-sidecar")]),
    "node-pressure eviction": pod(
        "Failed", reason="Evicted", message="The node was low on resource: memory. Threshold quantity: 100Mi.",
        conditions=[condition("DisruptionTarget", reason="TerminationByKubelet",
                              message="The node was low on resource: memory.")],
        containers=[terminated(137, "Error")]),
    "scheduler preemption": pod(
        "Running", deleting=True,
        conditions=[condition("DisruptionTarget", reason="PreemptionByScheduler",
                              message="tune-serve: preempting to accommodate a higher priority pod")],
        containers=[running()]),
    "taint manager (node unreachable)": pod(
        "Running", deleting=True,
        conditions=[condition("DisruptionTarget", reason="DeletionByTaintManager",
                              message="Taint manager: deleting due to NoExecute taint")],
        containers=[running()]),
    "drain through the eviction API": pod(
        "Running", deleting=True,
        conditions=[condition("DisruptionTarget", reason="EvictionByEvictionAPI", message="Eviction API: evicting")],
        containers=[running()]),
    "pod garbage collection (node deleted)": pod(
        "Failed",
        conditions=[condition("DisruptionTarget", reason="DeletionByPodGC",
                              message="PodGC: node no longer exists")],
        containers=[running()]),
    "kubelet preempting for a critical pod": pod(
        "Failed", reason="Preempting", message="Preempted in order to admit critical pod",
        conditions=[condition("DisruptionTarget", reason="TerminationByKubelet",
                              message="Pod was preempted by Kubelet to accommodate a critical pod.")],
        containers=[terminated(137, "Error")]),
    "graceful shutdown, kubelet before DisruptionTarget": pod(
        "Failed", reason="Shutdown", message="Shutting down, node is shutting down",
        containers=[terminated(143, "Error")]),
    "admission rejected during node shutdown": pod(
        "Failed", reason="NodeShutdown", message="Pod was rejected as the node is shutting down."),
    "deleted by hand while running": pod("Running", deleting=True, containers=[running()]),
    "container lost with its node": pod(
        "Failed", containers=[terminated(137, "ContainerStatusUnknown",
                                         "The container could not be located when the pod was terminated")]),
    "pod not found": None,
}

FAILED = {
    "exit 1": (pod("Failed", containers=[terminated(1, "Error", "error: ValueError: loss is NaN")]), "exit 1 (Error)"),
    "exit 2, bad input": (pod("Failed", containers=[terminated(2, "Error", "error: --label: no column 'prize'")]),
                          "bad input (exit 2): error: --label: no column 'prize'"),
    "OOMKilled under its own limit": (pod("Failed", containers=[terminated(137, "OOMKilled")]), "OOMKilled"),
    "over its own ephemeral-storage limit": (
        pod("Failed", reason="Evicted",
            message="Pod ephemeral local storage usage exceeds the total limit of containers 10Gi. "),
        "exceeding its own limit"),
    "past activeDeadlineSeconds": (
        pod("Failed", reason="DeadlineExceeded", message="Pod was active on the node longer than the specified deadline"),
        "activeDeadlineSeconds"),
    "image cannot be pulled": (
        pod("Pending", containers=[waiting("ErrImagePull", "pull access denied")]), "ErrImagePull"),
    "never scheduled": (
        pod("Pending", conditions=[condition("PodScheduled", "False", reason="Unschedulable",
                                             message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")]),
        "Unschedulable"),
}


@pytest.mark.parametrize("final_pod", PREEMPTED.values(), ids=PREEMPTED.keys())
def test_node_side_endings_are_preemptions(final_pod):
    verdict = classify(final_pod)
    assert verdict.preempted, verdict.reason
    assert isinstance(verdict.exception("tune-abc123"), PodPreempted)


@pytest.mark.parametrize(("final_pod", "reason"), FAILED.values(), ids=FAILED.keys())
def test_the_containers_own_failures_are_not(final_pod, reason):
    verdict = classify(final_pod)
    assert not verdict.preempted
    assert reason in verdict.reason
    assert isinstance(verdict.exception("tune-abc123"), AirflowFailException)  # never retried


def test_retry_policy_retries_preemptions_only():
    policy = retry_policy()
    assert policy.evaluate(PodPreempted("spot"), 1, 9).action == RetryAction.RETRY
    assert policy.evaluate(AirflowException("Pod returned a failure"), 1, 9).action == RetryAction.FAIL
    assert policy.evaluate(ConnectionError("api"), 1, 9).action == RetryAction.FAIL
    # the policy names an importable class, as the serialized DAG keeps it
    assert policy.serialize()["rules"][0]["exception"] == "tune_serve.errors.PodPreempted"


# ---- the operator: KubernetesPodOperator's cleanup() re-raised as the verdict ------------

def _operator(read_pod=None):
    op = KubernetesTrainerPodOperator(task_id="tune", name="tune", namespace="tune-serve", image="x", do_xcom_push=True,
                            on_finish_action="delete_succeeded_pod", log_events_on_failure=False)
    pod_manager = mock.MagicMock()
    pod_manager.read_pod.side_effect = read_pod or (lambda p: p)
    op.__dict__.update(pod_manager=pod_manager, client=mock.MagicMock())  # no cluster: stub the cached clients
    return op


def test_cleanup_raises_pod_preempted_for_a_reclaimed_spot_node():
    op = _operator()
    final = PREEMPTED["graceful node shutdown (spot reclaim)"]
    op.pod = final
    with pytest.raises(PodPreempted, match="DisruptionTarget/TerminationByKubelet"):
        op.cleanup(pod=final, remote_pod=final)
    op.pod_manager.delete_pod.assert_not_called()  # a failed pod is kept for debugging


def test_cleanup_raises_pod_failed_with_the_trainers_reason():
    op = _operator()
    final = FAILED["exit 2, bad input"][0]
    op.pod = final
    with pytest.raises(PodFailed, match="no column 'prize'"):
        op.cleanup(pod=final, remote_pod=final)


def test_cleanup_rereads_a_stale_pod_and_a_vanished_one_is_preempted():
    gone = ApiException(status=404, reason="Not Found")
    op = _operator(read_pod=mock.Mock(side_effect=gone))
    stale = pod("Pending")  # what the operator saw right after creating it
    op.pod = stale
    with pytest.raises(PodPreempted, match="no longer exists"):
        op.cleanup(pod=stale, remote_pod=stale)


def test_cleanup_of_a_succeeded_pod_deletes_it_and_raises_nothing():
    op = _operator()
    done = pod("Succeeded", containers=[terminated(0, "Completed"), running("airflow-xcom-sidecar")])
    op.pod = done
    op.cleanup(pod=done, remote_pod=done, xcom_result={"tuner_id": "tuner-0"})
    op.pod_manager.delete_pod.assert_called_once()


def test_a_pod_that_was_never_created_is_a_plain_failure():
    op = _operator()
    op.pod = None  # create_pod raised (e.g. 403 from RBAC): not a preemption
    op.cleanup(pod=pod("Pending"), remote_pod=None)  # KubernetesPodOperator skips; the API error propagates


def test_deferred_pod_gone_before_resuming_is_preempted():
    op = _operator()
    with mock.patch("airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator.trigger_reentry",
                    side_effect=PodNotFoundException("Pod tune-serve/tune-abc123 not found after resuming")):
        with pytest.raises(PodPreempted):
            op.trigger_reentry(context={}, event={"name": "tune-abc123", "namespace": "tune-serve",
                                                  "status": "failed"})
