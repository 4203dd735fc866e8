"""The fault-injection suite's private Airflow and its results file.

Same approach as tests/e2e/conftest.py (every root under a temp dir, the repository's own
scripts/airflow-stack.sh), plus what a chaos installation needs:
- a cluster policy (airflow_local_settings.py) that lowers the tuner retry budget of
  `lowbudget-*` runs, so "retries exhausted" takes two kills instead of forty minutes;
- room for several runs at once (pool slots, parallelism);
- a short orphaned-task check, so tasks whose worker died with the scheduler are reset and
  retried (re-attached) within a minute of the restart rather than five.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))

import private_airflow  # noqa: E402
from chaos_helpers import KERAS, MAIN_MODEL, SLEEP, USER_MODEL, Pods, Results, Run, kill_leftovers  # noqa: E402
from injectors import (  # noqa: E402
    kill_chief_mid_search,
    kill_training_mid_way,
    kill_tuner_mid_trial,
    kill_tuner_retry_at_start,
    stream_through_switch,
)

RESULTS = Path(os.environ.get("CHAOS_RESULTS", REPO / "var" / "chaos" / "results.jsonl"))


@dataclass
class Stack:
    client: object
    env: dict
    home: Path
    storage: Path
    serving: Path
    pods: Pods

    def run_root(self, run_id: str) -> Path:
        return self.storage / "runs" / run_id

    def start(self) -> None:
        """`airflow-stack.sh start`: starts whichever component is not running."""
        subprocess.run([str(private_airflow.SCRIPT), "start"], env=self.env, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)

    def component_pid(self, name: str) -> int:
        return int((self.home / "pids" / name).read_text())

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """The `airflow` CLI of this installation (scripts/airflow-env.sh with this stack's env)."""
        command = 'source "$0" && exec airflow "$@"'
        return subprocess.run(["bash", "-c", command, str(REPO / "scripts" / "airflow-env.sh"), *args],
                              env=self.env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def results() -> Results:
    return Results(RESULTS)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    base = tmp_path_factory.mktemp("chaos")
    home = base / "airflow"
    (home / "config").mkdir(parents=True)
    shutil.copy(HERE / "airflow_local_settings.py", home / "config" / "airflow_local_settings.py")
    env = private_airflow.private_env(base, **{
        "TUNE_SERVE_TUNER_SLOTS": "16",
        "AIRFLOW__CORE__PARALLELISM": "14",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "32",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
        # the bad-input tables (test_1_bad_input's CSV) are in pytest's temp folders
        "TUNE_SERVE_DATA_ROOTS": str(tmp_path_factory.getbasetemp()),
    })
    try:
        client = private_airflow.start(env, timeout=300)
        yield Stack(client, env, home, base / "storage", base / "serving", Pods(base / "local"))
    finally:
        private_airflow.stop(env, timeout=120)
        kill_leftovers(Pods(base / "local"))



def rejudge_a_refused_pair_member(stack, pair) -> None:
    """The pair of case 8 both deploy MAIN_MODEL. A member evaluated before the other's version
    served had its verdict judged with nothing serving, and its deploy refuses it once the other's
    version serves (issue 29). The refusal says what to do: clear the run's evaluation, which
    judges the candidate against what serves then; done here, so case 6 still gets its second
    version, and the refusal is kept for case 8 (the run's `refusal`)."""
    from chaos_helpers import DAG_ID, _retrying, wait_for, wait_run

    for run in pair:
        deployed = run.xcom("serving.deploy_serving") or {}
        if deployed.get("action") != "refused":
            continue
        body = {"dry_run": False, "dag_run_id": run.run_id, "task_ids": ["evaluation.evaluation_arguments"],
                "include_downstream": True, "only_failed": False, "reset_dag_runs": True}
        before = run.ti("serving.deploy_serving")["try_number"]
        _retrying(lambda: stack.client.http.post(f"/dags/{DAG_ID}/clearTaskInstances", json=body).raise_for_status())
        wait_for(lambda: run.ti("serving.deploy_serving")["try_number"] > before and
                 run.ti("serving.deploy_serving")["state"] in ("success", "failed"), 900,
                 f"{run.run_id}: its deployment after the evaluation was cleared", interval=1)
        run.state = wait_run(stack.client, run.run_id, 600)
        run.refusal = deployed


@pytest.fixture(scope="session")
def runs(stack):
    """Five runs started at once, each with the faults it takes (injected from threads that wait
    for the right moment in the run's stored state):

    - base       KERAS with the shipped wide-and-deep example (USER_MODEL: every guarantee must hold
                 for a user model, not only the built-in one), unfaulted: the baseline of the
                 faulted run's costs. Deploys to MAIN_MODEL.
    - faulted    KERAS + USER_MODEL, same conf: a tuner SIGKILLed mid-trial (case 1), then its training
                 SIGKILLed mid-way (case 4). Deploys to MAIN_MODEL too: with `base` it is the pair
                 of case 8, and their version switch happens under a prediction stream (case 6).
    - lowbudget  KERAS (the built-in model), one retry per tuner (airflow_local_settings.py): the same tuner killed
                 twice, so it never comes back (case 2); an MAE bound no model meets (case 6).
    - chief      SLEEP: the chief SIGKILLed mid-search (case 3)
    - sleepbase  SLEEP, unfaulted: the chief run's baseline
    """
    client = stack.client
    runs = {
        "base": Run(client, "keras-base", {**KERAS, "model": USER_MODEL, "model_name": MAIN_MODEL}),
        "faulted": Run(client, "keras-faulted", {**KERAS, "model": USER_MODEL, "model_name": MAIN_MODEL}),
        # lease 20 s: 10 s is allowed, but a healthy tuner renews its lease only every 10 s
        "lowbudget": Run(client, "lowbudget-lost-tuner", {**KERAS, "top_n": 1, "tuner_lease_seconds": 20,
                                                          "mae_upper_bound": 1.0, "model_name": "chaos-unblessed"}),
        "chief": Run(client, "sleep-chief-killed", SLEEP),
        "sleepbase": Run(client, "sleep-base", SLEEP),
    }

    def faulted(run):
        kill_tuner_mid_trial(stack, run)
        kill_training_mid_way(stack, run, rank=0)

    def lowbudget(run):
        first = kill_tuner_mid_trial(stack, run)
        kill_tuner_retry_at_start(stack, run, first["map_index"], try_number=2)

    threads = [runs["faulted"].injector("tuner+train kills", faulted),
               runs["lowbudget"].injector("tuner lost for good", lowbudget),
               runs["chief"].injector("chief kill", lambda run: kill_chief_mid_search(stack, run)),
               runs["base"].injector("prediction stream", lambda run: stream_through_switch(stack, run, MAIN_MODEL))]
    for run in runs.values():
        run.wait(timeout=1800)
    rejudge_a_refused_pair_member(stack, [runs["base"], runs["faulted"]])
    for thread in threads:
        thread.join(timeout=120)
    return runs
