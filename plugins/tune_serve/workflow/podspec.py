"""One description of every pod task, rendered by whichever backend is in use.

The DAG states *what* runs (trainer step, arguments, resources, whether it may run on
preemptible capacity, its retry budget); `tune_serve.local.backend` turns it into a process in the
trainer environment and `tune_serve.kubernetes.backend` into a KubernetesPodOperator. Arguments and
env are Jinja-templated by both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

TRAINER_COMMAND = ["python", "-m", "trainer"]


@dataclass(frozen=True)
class Resources:
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    # Local disk (scratch files, logs) reserved and capped per pod: on a shared node a pod
    # that fills the disk is evicted alone instead of evicting its neighbours.
    ephemeral_storage: str = "10Gi"


@dataclass(frozen=True)
class PodTask:
    task_id: str
    step: str                               # trainer subcommand: prepare, oracle, tune, train, evaluate
    arguments: tuple[str, ...] = ()         # flags after the step (templated)
    env: dict[str, str] = field(default_factory=dict)   # extra environment (templated)
    resources: Resources = Resources()
    preemptible: bool = False               # may run on spot/preemptible nodes
    retries: int = 2                        # retried only for preemptions; code failures fail at once
    retry_delay: timedelta = timedelta(seconds=10)
    max_retry_delay: timedelta = timedelta(minutes=10)
    deadline: timedelta = timedelta(hours=6)  # activeDeadlineSeconds / local process timeout
    pool: str | None = None

    @property
    def command(self) -> list[str]:
        return [*TRAINER_COMMAND, self.step]

