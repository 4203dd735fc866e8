"""The DAG's task ids, named once: the DAG builds its tasks with them and the run summary
reads task states by them."""
from __future__ import annotations

import re

TUNING, TRAINING, EVALUATION, SERVING = "tuning", "training", "evaluation", "serving"

VALIDATE_PARAMS = "validate_params"
PREPARE_DATA = "prepare_data"
START_ORACLE = f"{TUNING}.start_oracle"
TUNE = f"{TUNING}.tune"
WAIT_ORACLE = f"{TUNING}.wait_oracle"
STOP_ORACLE = f"{TUNING}.stop_oracle"
TRAIN = f"{TRAINING}.train"
EVALUATE = f"{EVALUATION}.evaluate"
SELECT_MODEL = f"{SERVING}.select_model"
DEPLOY_SERVING = f"{SERVING}.deploy_serving"
SUMMARIZE = "summarize"

_MAP_INDEX = re.compile(r"_\d+$")


def in_group(task_id: str) -> str:
    """The id a task has inside its task group (`tuning.tune` → `tune`), for PodTask and @task."""
    return task_id.rsplit(".", 1)[-1]


def unmapped(key: str) -> str:
    """The task of a state key: a mapped task's instances are keyed `task_{map_index}`."""
    return _MAP_INDEX.sub("", key)
