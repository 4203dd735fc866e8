"""A pod task's result: the JSON its trainer step writes under the run root, read from storage.

KubernetesPodOperator's own way (`do_xcom_push=True`) adds an `alpine` sidecar to every pod and
reads `/airflow/xcom/return.json` by exec'ing `cat` in it, which needs `pods/exec` in Airflow's
Role; exec into a pod reads every Secret the pod mounts (a tuner's search secret among them).
So a pod task runs with `do_xcom_push=False`: the operator tells the step where to write
(`TRAINER_XCOM_FILE`, the trainer's own setting) and, once the pod succeeded, reads that file
from the run's storage, as `wait_oracle` reads the chief's result, and pushes it as the task's
return value.

One file per task, map index and try, so a retry never reads what an earlier try left:

    {run_root}/results/{task_id}/[{map_index}/]try-{try_number}.json
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tune_serve.errors import PodFailed

XCOM_FILE_ENV = "TRAINER_XCOM_FILE"  # the trainer's --xcom-file fallback (tune_contract.steps)
RUN_ROOT_FLAG = "--run-root="  # every step's flag; to_argv() always writes `--flag=value`
RESULTS_DIR = "results"


def result_uri(run_root: str, task_id: str, map_index: int, try_number: int) -> str:
    index = f"{map_index}/" if map_index is not None and map_index >= 0 else ""
    return f"{run_root.rstrip('/')}/{RESULTS_DIR}/{task_id}/{index}try-{try_number}.json"


def run_root(arguments: Sequence[str]) -> str:
    """The run root a pod task's (rendered) arguments name."""
    for argument in arguments or ():
        if isinstance(argument, str) and argument.startswith(RUN_ROOT_FLAG):
            return argument[len(RUN_ROOT_FLAG):]
    raise PodFailed(f"the pod's arguments carry no {RUN_ROOT_FLAG.rstrip('=')}; cannot place its result")


def task_result_uri(arguments: Sequence[str], ti: Any) -> str:
    return result_uri(run_root(arguments), ti.task_id, ti.map_index, ti.try_number)
