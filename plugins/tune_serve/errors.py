"""Why a pod task ended badly, decided from the pod's (or process's) final state.

Only `PodPreempted` is retried: the node went away, not the code. A failure of the
code itself fails the task at once, so a bad input is never re-run as if preempted.
"""
from airflow.sdk.exceptions import AirflowException, AirflowFailException


class PodPreempted(AirflowException):
    """The pod's node was reclaimed, it was evicted, deleted, or its process was killed."""


class PodFailed(AirflowFailException):
    """The program exited non-zero on its own; retrying would fail the same way."""
