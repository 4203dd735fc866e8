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
AGGREGATE_TOP_N = "aggregate_top_n"
TUNER_ARGUMENTS = f"{TUNING}.tuner_arguments"
TRAINING_ARGUMENTS = f"{TRAINING}.training_arguments"
EVALUATION_ARGUMENTS = f"{EVALUATION}.evaluation_arguments"
# A tuner lost for good is survivable: its trials were handed to the others by the chief.
TOLERATED = frozenset({TUNE, STOP_ORACLE, SUMMARIZE})
# the order the tasks run in: which of two failures came first when no time tells
ORDER = (VALIDATE_PARAMS, PREPARE_DATA, START_ORACLE, TUNER_ARGUMENTS, TUNE, WAIT_ORACLE, STOP_ORACLE,
         AGGREGATE_TOP_N, TRAINING_ARGUMENTS, TRAIN, EVALUATION_ARGUMENTS, EVALUATE, SELECT_MODEL,
         DEPLOY_SERVING, SUMMARIZE)

_MAP_INDEX = re.compile(r"_\d+$")


def in_group(task_id: str) -> str:
    """The id a task has inside its task group (`tuning.tune` → `tune`), for PodTask and @task."""
    return task_id.rsplit(".", 1)[-1]


def unmapped(key: str) -> str:
    """The task of a state key: a mapped task's instances are keyed `task_{map_index}`."""
    return _MAP_INDEX.sub("", key)


def run_order(key: str) -> tuple[int, int]:
    """A state key's place in the run: its task's, then its map index."""
    task = unmapped(key)
    index = key[len(task) + 1:] if key != task else "-1"
    return (ORDER.index(task) if task in ORDER else len(ORDER),
            int(index) if index.lstrip("-").isdigit() else -1)
