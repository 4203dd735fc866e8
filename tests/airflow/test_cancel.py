"""Issue 28: a run marked failed while its tuners run (a cancel) ends failed, never success.

Airflow decides a run's state from its leaves, and a teardown is no leaf unless it has
on_failure_fail_dagrun. Marking a run failed fails its running tasks, skips the waiting ones and
leaves teardowns to run (airflow.api.common.mark_tasks); with summarize skipped, the run ended
as success once stop_oracle had run. Here the same steps on the DAG as the DAG processor parses it,
with Airflow's own leaf rule (DagRun._tis_for_dagrun_state) and the DAG's own summarize."""
from types import SimpleNamespace

import pytest

from tune_serve.workflow import failures, summaries

RUN_ID = "manual__2026-12-07T11:00:00+00:00"
RUNNING = {"running", "deferred", "up_for_reschedule"}
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag
    from conftest import REPO

    return DagBag(dag_folder=str(REPO / "dags")).dags["tune_train_serve"]


@pytest.fixture(autouse=True)
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path / "storage"))


def mark_failed(dag, states: dict[str, str | None]) -> dict[str, str | None]:
    """What PATCH .../dagRuns/{run_id} {"state": "failed"} does to the task states
    (_set_dag_run_terminal_state): running → failed, waiting → skipped, teardowns untouched."""
    after = {}
    for key, state in states.items():
        task = dag.get_task(key.rsplit("_", 1)[0] if key.rsplit("_", 1)[-1].isdigit() else key)
        if task.is_teardown or state in FINISHED:
            after[key] = state
        else:
            after[key] = "failed" if state in RUNNING else "skipped"
    return after


def summarize(dag, states: dict[str, str | None]) -> str:
    """The DAG's summarize on these states (upstream XComs of a run cut short: none): its state."""
    from airflow.sdk.exceptions import AirflowFailException

    ti = SimpleNamespace(run_id=RUN_ID, dag_id=dag.dag_id,
                         get_task_states=lambda dag_id, run_ids: {RUN_ID: {**states, "summarize": "running"}})
    from tune_serve.workflow import plan as planning

    plan = {"run_id": RUN_ID, "model_name": "m", "run_root": planning.run_root(RUN_ID), "objective_function": None}
    try:
        dag.get_task("summarize").python_callable(plan, None, None, None, None, None, None, params={}, ti=ti, dag=dag)
    except AirflowFailException:
        return "failed"
    return "success"


def run_state(dag, states: dict[str, str | None]) -> str:
    """Airflow's rule once every task is done: failed if a leaf failed, success if all leaves succeeded."""
    from dataclasses import dataclass

    from airflow.models.dagrun import DagRun

    @dataclass(frozen=True)
    class TI:
        task_id: str
        map_index: int
        state: str | None

    tis = [TI(key.rsplit("_", 1)[0], int(key.rsplit("_", 1)[1]), state) if key.rsplit("_", 1)[-1].isdigit()
           else TI(key, -1, state) for key, state in states.items()]
    leaves = DagRun._tis_for_dagrun_state(DagRun(), dag=dag, tis=tis)
    assert {ti.task_id for ti in leaves} == {"summarize"}
    return "failed" if any(ti.state in ("failed", "upstream_failed") for ti in leaves) else "success"


def test_summarize_is_the_teardown_that_decides_the_runs_state(dag):
    task = dag.get_task("summarize")
    assert task.is_teardown and task.on_failure_fail_dagrun
    # its trigger rule with no setup upstream is all done: it runs after a refused run too
    assert not any(dag.get_task(t).is_setup for t in task.upstream_task_ids)
    assert {"validate_params", "tuning.wait_oracle", "serving.deploy_serving"} <= task.upstream_task_ids


TUNING = {"validate_params": "success", "prepare_data": "success", "tuning.start_oracle": "success",
          "tuning.tuner_arguments": "success", "tuning.tune_0": "running", "tuning.tune_1": "running",
          "tuning.wait_oracle": "deferred", "tuning.stop_oracle": None, "aggregate_top_n": None,
          "training.training_arguments": None, "training.train": None, "evaluation.evaluation_arguments": None,
          "evaluation.evaluate": None, "serving.select_model": None, "serving.deploy_serving": None,
          "summarize": None}


def test_a_run_cancelled_while_its_tuners_run_ends_failed(dag):
    states = mark_failed(dag, TUNING)
    assert states["summarize"] is None and states["aggregate_top_n"] == "skipped"  # the teardown still runs
    states["tuning.stop_oracle"] = "success"  # the teardown stops the chief
    states["summarize"] = summarize(dag, states)
    assert states["summarize"] == "failed"
    assert run_state(dag, states) == "failed"
    # before issue 28 summarize was skipped with the others: every leaf "succeeded"
    assert run_state(dag, {**states, "summarize": "skipped"}) == "success"


def test_a_run_cancelled_between_two_tasks_ends_failed(dag):
    """Nothing was running (both trainings queued): only skipped tasks tell of the cancel."""
    waiting = {**TUNING, "tuning.tune_0": "success", "tuning.tune_1": "success", "tuning.wait_oracle": "success",
               "tuning.stop_oracle": "success", "aggregate_top_n": "success", "training.training_arguments": "success",
               "training.train": None, "training.train_0": "queued", "training.train_1": "scheduled"}
    del waiting["training.train"]
    states = mark_failed(dag, waiting)
    assert {k for k, s in states.items() if s == "failed"} == set()
    states["summarize"] = summarize(dag, states)
    assert states["summarize"] == "failed" and run_state(dag, states) == "failed"
    summary = (summaries.build({"run_id": RUN_ID, "model_name": "m"}, None, None, None, states,
                               skipped_from_outside=["training.train_0", "training.train_1"]))
    assert summary["outcome"] == f"nothing deployed: training.train_0 failed: {failures.SKIPPED}"


def test_a_run_that_skips_by_design_still_succeeds(dag):
    """Nothing blessed (select_model skipped itself), or no candidate trained (a mapped task over []):
    not a cancel."""
    upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
    nothing_blessed = {**{k: "success" for k in TUNING}, "serving.select_model": "skipped",
                       "serving.deploy_serving": "skipped"}
    assert summaries.stopped(nothing_blessed, upstream, summaries.may_skip({}, [{"blessed": False}])) == []
    assert summaries.stopped(nothing_blessed, upstream, summaries.may_skip({}, [{"blessed": True}])) == \
        ["serving.select_model"]
    none_trained = {**{k: "success" for k in TUNING}, "training.train": "skipped",
                    "evaluation.evaluation_arguments": "skipped", "evaluation.evaluate": "skipped",
                    "serving.select_model": "skipped", "serving.deploy_serving": "skipped"}
    assert summaries.stopped(none_trained, upstream, summaries.may_skip({}, [])) == []
    benchmark = {**{k: "success" for k in TUNING}, "aggregate_top_n": "skipped",
                 "training.training_arguments": "skipped"}
    assert summaries.stopped(benchmark, upstream, summaries.may_skip({"objective_function": "branin"}, [])) == []


def test_a_reason_recorded_after_the_cancel_is_the_cancels_not_the_tasks():
    """Had Airflow run a killed task's failure callback, its record comes after the cancel: the
    task still counts as stopped; a failure recorded before the cancel is the task's own."""
    facts = {"state": "failed", "cancelled": {"by": "admin", "at": 100.0},
             "tasks": {"tuning.tune_0": "failed", "tuning.tune_1": "failed", "tuning.wait_oracle": "failed"}}
    recorded = {"tuning.tune_0": {"key": "tuning.tune_0", "reason": "exit status 2: bad input", "at": 50.0},
                "tuning.wait_oracle": {"key": "tuning.wait_oracle", "reason": "killed", "at": 101.0}}
    assert failures.cancel_line(facts, recorded) == ("cancelled by admin during tuning.tune, tuning.wait_oracle: "
                                                     "nothing deployed (stopped: tuning.tune_1, tuning.wait_oracle)")
