"""The JSON each trainer step leaves as its result (the task's XCom), and a trial.

Results may carry more keys than listed here; consumers ignore what they don't use.
`total=False` marks the keys a producer may leave out.
"""
from __future__ import annotations

import math
from typing import Any, TypedDict


class Objective(TypedDict):
    name: str
    direction: str


class Trial(TypedDict, total=False):
    trial_id: str
    hyperparameters: dict[str, Any]
    objective: float | None
    status: str
    epochs: int
    seconds: float
    tuner_id: str | None
    resumed_from_epoch: int


class RankedTrial(Trial, total=False):
    rank: int  # place in the top-N, 0 = best (aggregate_top_n)


class PrepareResult(TypedDict, total=False):
    data_dir: str
    feature_spec: str
    label: str
    train_examples: int
    eval_examples: int
    columns: list[str]
    sample_instance: dict[str, Any]
    sample_label: float


class OracleResult(TypedDict, total=False):
    trials: list[Trial]  # ranked, best first
    completed: int
    max_trials: int
    incomplete: list[Trial]
    lost_tuners: list[str]
    objective: Objective
    deadline_hit: bool


class TuneResult(TypedDict):
    tuner_id: str
    replicas: int  # the devices its trials were mirrored over (MirroredStrategy); 0 if it ran none
    trials: list[Trial]


class TrainResult(TypedDict, total=False):
    rank: int
    trial_id: str
    model: str  # the builder, `module:callable` (the model contract)
    hyperparameters: dict[str, Any]
    replicas: int  # MirroredStrategy replicas it trained on (1: one device)
    global_batch_size: int  # the per-replica batch_size x replicas
    model_path: str
    metrics: dict[str, float | None]
    epochs: int
    initial_epoch: int
    seconds: float
    objective: Objective
    stopped_early: bool
    logs: str
    failed: str  # why this candidate failed (a diverged loss); then there is no model_path


class EvaluateResult(TypedDict, total=False):
    rank: int
    model_path: str
    blessed: bool
    failed_thresholds: list[str]
    overall: dict[str, float | None]
    slices: list[dict[str, Any]]
    report: str
    baseline: dict[str, Any] | None
    thresholds: dict[str, Any]
    eval_dir: str


class OracleHandle(TypedDict, total=False):
    """What `start_oracle` pushes: where the chief listens, and what its backend needs to
    wait for it and remove it."""

    address: str


def finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None: JSON has no NaN/Infinity, and a
    diverged trial must still produce a valid result."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
