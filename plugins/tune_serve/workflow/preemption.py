"""Preemption versus failure: the one decision that sets whether a pod task is retried.

A pod that died because its node went away (spot reclaim, node shutdown, eviction,
scheduler preemption, the pod deleted under it) raises `PodPreempted`, which the
task's `retry_policy` retries with backoff. A container that failed on its own (a
non-zero exit, bad input, OOM under its own limit, its own deadline) raises
`PodFailed`, an `AirflowFailException`, so Airflow fails the task at once.

The decision reads only the final pod status (phase, reason, the DisruptionTarget
condition, the base container's termination state), never the log.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

from tune_serve.errors import PodFailed, PodPreempted  # one pair of classes for every backend

if TYPE_CHECKING:
    from kubernetes.client import V1ContainerStatus, V1Pod

__all__ = ["PodFailed", "PodPreempted", "Verdict", "classify", "retry_policy"]

# Set by the control plane or the kubelet on every pod it is about to end for a reason
# outside the pod (stable since Kubernetes 1.31, on by default since 1.26).
DISRUPTION_CONDITION = "DisruptionTarget"

# `status.reason` values written when the node, not the pod, ended it:
#   Evicted     node-pressure eviction (the kubelet also writes it for a pod over its own
#               ephemeral-storage limit; `_exceeded_own_limit` separates the two)
#   Preempting  kubelet preempted the pod for a system-critical pod
#   Terminated  graceful node shutdown ("Pod was terminated in response to imminent node shutdown.")
#   Shutdown    graceful node shutdown, kubelets before 1.22
#   NodeShutdown  admission rejected while the node shuts down
#   NodeLost    node controller gave up on an unreachable node
#   UnexpectedAdmissionError  kubelet could not admit it after a restart (e.g. GPU device plugin not ready)
NODE_REASONS = frozenset({"Evicted", "Preempting", "Terminated", "Shutdown", "NodeShutdown", "NodeLost",
                          "UnexpectedAdmissionError"})

# The kubelet's own eviction messages for a pod that outgrew its limits: the pod's fault.
_OWN_LIMIT_MESSAGES = (
    "exceeds the total limit of containers",
    "exceeded its local ephemeral storage limit",
    "Usage of EmptyDir volume",
)

# Container termination reason when the runtime lost the container together with its node.
_LOST_CONTAINER = "ContainerStatusUnknown"

BAD_INPUT_EXIT_CODE = 2  # trainer contract: bad input, never retried


@dataclass(frozen=True)
class Verdict:
    preempted: bool
    reason: str

    def exception(self, pod_name: str | None) -> PodPreempted | PodFailed:
        message = f"pod {pod_name or '?'}: {self.reason}"
        return PodPreempted(message) if self.preempted else PodFailed(message)


def classify(pod: V1Pod | None, container: str = "base") -> Verdict:
    """Decide from a final pod status whether the pod was preempted or failed."""
    if pod is None or pod.status is None:
        return Verdict(True, "pod no longer exists (deleted, or garbage-collected with its node)")
    status = pod.status

    disruption = next(
        (c for c in status.conditions or [] if c.type == DISRUPTION_CONDITION and c.status == "True"), None
    )
    if disruption is not None:
        return Verdict(True, _join(f"{DISRUPTION_CONDITION}/{disruption.reason}", disruption.message))

    if status.reason == "DeadlineExceeded":
        return Verdict(False, _join("ran past its activeDeadlineSeconds", status.message))
    if status.reason in NODE_REASONS:
        if status.reason == "Evicted" and _exceeded_own_limit(status.message):
            return Verdict(False, _join("evicted for exceeding its own limit", status.message))
        return Verdict(True, _join(status.reason, status.message))

    if pod.metadata is not None and pod.metadata.deletion_timestamp is not None:
        return Verdict(True, "pod was deleted while it ran")

    base = _container_status(pod, container)
    terminated = base.state.terminated if base is not None and base.state is not None else None
    if terminated is not None:
        if terminated.reason == _LOST_CONTAINER:
            return Verdict(True, _join("container lost with its node", terminated.message))
        return Verdict(False, _exit_reason(terminated))

    waiting = base.state.waiting if base is not None and base.state is not None else None
    if waiting is not None:
        return Verdict(False, _join(f"container never ran: {waiting.reason}", waiting.message))

    unscheduled = next(
        (c for c in status.conditions or [] if c.type == "PodScheduled" and c.status == "False"), None
    )
    if unscheduled is not None:
        return Verdict(False, _join(f"never scheduled: {unscheduled.reason}", unscheduled.message))
    return Verdict(False, _join(f"pod did not finish (phase {status.phase})", status.message))


def retry_policy() -> ExceptionRetryPolicy:
    """Retry preemptions (with the task's own delay and backoff); fail everything else."""
    return ExceptionRetryPolicy(
        rules=[RetryRule(exception=PodPreempted, action=RetryAction.RETRY, reason="pod preempted")],
        default=RetryAction.FAIL,
    )


def _container_status(pod: V1Pod, name: str) -> V1ContainerStatus | None:
    return next((c for c in pod.status.container_statuses or [] if c.name == name), None)


def _exit_reason(terminated) -> str:
    code = terminated.exit_code
    if terminated.reason == "OOMKilled":
        head = f"OOMKilled (exit {code}): the container exceeded its memory limit"
    elif code == BAD_INPUT_EXIT_CODE:
        head = f"bad input (exit {code})"
    else:
        head = f"exit {code} ({terminated.reason or 'Error'})"
    return _join(head, terminated.message)


def _exceeded_own_limit(message: str | None) -> bool:
    return message is not None and any(text in message for text in _OWN_LIMIT_MESSAGES)


def _join(head: str, detail: str | None) -> str:
    detail = (detail or "").strip()
    return f"{head}: {detail}" if detail else head
