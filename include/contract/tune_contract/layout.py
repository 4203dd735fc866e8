"""Where a run's files live under `{run_root}` (a local path or a `gs://` URI).

Paths are joined as strings with `/`, which both local paths and object-store URIs accept.
"""
from __future__ import annotations

from typing import Final

DATA_DIR: Final = "data"
TUNING_DIR: Final = "tuning"             # the Keras Tuner project directory
SEARCH_FILE: Final = "search.json"       # the flags that define the search, written by the chief
ORACLE_RESULT_FILE: Final = "oracle_result.json"  # the chief's result; its presence means the search is over
SPACE_FILE: Final = "space.json"         # the space the chief samples, by parameter kind (warm start)
MODELS_DIR: Final = "models"
EVAL_DIR: Final = "eval"
SUMMARY_FILE: Final = "summary.json"
KT_ORACLE_FILE: Final = "oracle.json"          # Keras Tuner's own oracle state (leases, hand-overs)
TRAINING_FILE: Final = "training.json"         # in models/{rank}/: the train step's result
HISTORY_FILE: Final = "logs/history.csv"       # in models/{rank}/: one row per epoch (Keras CSVLogger)
EVALUATION_FILE: Final = "evaluation.json"     # in eval/{rank}/: the evaluate step's result


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def runs_dir(storage_root: str) -> str:
    """Every run's folder is in here."""
    return join(storage_root, "runs")


def run_root(storage_root: str, run_id: str) -> str:
    return join(runs_dir(storage_root), run_id)


def tuning_dir(root: str) -> str:
    return join(root, TUNING_DIR)


def oracle_result(root: str) -> str:
    return join(root, TUNING_DIR, ORACLE_RESULT_FILE)


def model_dir(root: str, rank: int) -> str:
    return join(root, MODELS_DIR, str(rank))


def eval_dir(root: str, rank: int) -> str:
    return join(root, EVAL_DIR, str(rank))


def summary(root: str) -> str:
    return join(root, SUMMARY_FILE)


def kt_oracle(root: str) -> str:
    return join(root, TUNING_DIR, KT_ORACLE_FILE)


def training_result(root: str, rank: int) -> str:
    return join(model_dir(root, rank), TRAINING_FILE)


def history(root: str, rank: int) -> str:
    return join(model_dir(root, rank), HISTORY_FILE)


def evaluation_result(root: str, rank: int) -> str:
    return join(eval_dir(root, rank), EVALUATION_FILE)
