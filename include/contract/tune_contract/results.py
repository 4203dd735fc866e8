"""The JSON each trainer step leaves as its result (the task's XCom), and a trial.

Each TypedDict lists every key its step writes (tests/trainer/test_results_contract.py checks
the steps' results against them); consumers ignore what they don't use. `total=False` marks the
keys a producer may leave out. The Airflow side reads these from XCom or storage (the Kubernetes
backend: `tune_serve.kubernetes.results`, the file a pod task leaves); each platform's chief
handle extends `OracleHandle`.
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
    epochs: int | None  # None for a trial no tuner finished
    seconds: float | None  # the run that finished it
    tuner_id: str | None
    resumed_from_epoch: int
    started_at: float | None  # Unix seconds of the run that finished it
    ended_at: float | None
    pruned: str  # why early stopping ended it (its status stays COMPLETED)
    failure: str  # why it failed (a diverged loss)


class RankedTrial(Trial, total=False):
    rank: int  # place in the top-N, 0 = best (aggregate_top_n)


class PreparedModel(TypedDict):
    """The run's model as `prepare` checked it (the model contract)."""

    name: str  # `module:callable`
    task: str
    hyperparameters: list[str]  # the names it declares


class PrepareResult(TypedDict, total=False):
    data_dir: str
    feature_spec: str
    label: str
    task: str
    task_reason: str  # given by the run, or what the label column looked like
    label_vocabulary: list[str] | None  # a classifier's class names, else None
    train_examples: int
    eval_examples: int
    columns: dict[str, list[str]]  # {"numeric": [...], "categorical": [...]}
    sample_instance: dict[str, Any]  # keyed by signature key
    sample_label: float | str  # a class name for a classifier
    name_mapping: dict[str, dict[str, str]]  # {name: {"keras_input", "signature_key"}}, changed names only
    model: PreparedModel


# Which previous run seeded the search and with how many trials (`trials` 0: none, `note` says why);
# the functional form because one key, "from", is a Python keyword.
WarmStart = TypedDict("WarmStart", {"from": "str | None", "trials": int, "left_out": int, "note": str},
                      total=False)


class OracleResult(TypedDict, total=False):
    trials: list[Trial]  # ranked, best first
    completed: int
    max_trials: int
    incomplete: list[Trial]
    lost_tuners: list[str]
    objective: Objective
    deadline_hit: bool
    early_stopping: str  # the rule the chief ran, and why
    warm_start: WarmStart | None  # None: the run asked for no warm start


class TuneResult(TypedDict):
    tuner_id: str
    replicas: int  # the devices its trials were mirrored over (MirroredStrategy); 0 if it ran none
    trials: list[Trial]


class TrainObjective(Objective, total=False):
    best: float | None  # the best epoch's value (the epoch exported)
    best_epoch: int | None


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
    objective: TrainObjective
    stopped_early: bool
    logs: str
    failed: str  # why this candidate failed (a diverged loss); then there is no model_path


class Headline(TypedDict):
    """The metric a candidate is judged and chosen by (MAE, AUC, accuracy), which way is better."""

    metric: str
    direction: str
    value: float | None


class EvaluateResult(TypedDict, total=False):
    rank: int
    task: str
    label_vocabulary: list[str] | None
    headline: Headline
    model_path: str
    baseline_model_path: str | None  # the version serving when it was judged (None: nothing served)
    blessed: bool
    reasons: list[str]  # at least one sentence; every `blessed: false` says why
    failed_thresholds: list[str]
    thresholds: dict[str, Any]
    thresholds_not_applicable: dict[str, Any]  # the other task's gates that were given, not applied
    overall: dict[str, float | None]
    slices: list[dict[str, Any]]
    baseline: dict[str, Any] | None
    eval_dir: str
    report: str
    calibration_plot: list[dict[str, Any]]  # a binary classifier's
    seconds: float


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
