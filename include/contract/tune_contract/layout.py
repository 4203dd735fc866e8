"""Where a run's files live under `{run_root}` (a local path or a `gs://` URI).

Paths are joined as strings with `/`, which both local paths and object-store URIs accept.
"""
from __future__ import annotations

from typing import Final

DATA_DIR: Final = "data"
TUNING_DIR: Final = "tuning"             # the Keras Tuner project directory
SEARCH_FILE: Final = "search.json"       # the flags that define the search, written by the chief
ORACLE_RESULT_FILE: Final = "oracle_result.json"  # the chief's result; its presence means the search is over
MODELS_DIR: Final = "models"
EVAL_DIR: Final = "eval"
SUMMARY_FILE: Final = "summary.json"


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def run_root(storage_root: str, run_id: str) -> str:
    return join(storage_root, "runs", run_id)


def tuning_dir(root: str) -> str:
    return join(root, TUNING_DIR)


def oracle_result(root: str) -> str:
    return join(root, TUNING_DIR, ORACLE_RESULT_FILE)


def model_dir(root: str, rank: int) -> str:
    return join(root, MODELS_DIR, str(rank))


def eval_dir(root: str, rank: int) -> str:
    return join(root, EVAL_DIR, str(rank))
