"""Issue 28: a failed run says why where the user looks, with the first failed task and its own
one-line reason: in summary.json (summarize runs all_done, even without a plan), in the run note
(from Airflow's own records when summarize wrote nothing) and at the top of the run view, which
renders any run (before, during, after a failure) with what exists and never a server path."""
import json
import re
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tune_serve.errors import PodFailed
from tune_serve.web import note_listener
from tune_serve.web.ui import app as view
from tune_serve.workflow import failures, run_note, summaries
from tune_serve.workflow.params import ConfError

RUN_ID = "manual__2026-12-07T10:00:00+00:00"
SPACE = "search_space: must be a non-empty list of parameters"
PREPARE = ("exit status 2: error: --source: not under TUNE_SERVE_DATA_ROOTS (allowed: /data; or a bundled "
           "dataset: diamonds)")


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(root))
    return root


@pytest.fixture
def client(root, view_client):
    return view_client()


def fail(task_id, error, map_index=-1, run_id=RUN_ID):
    """What the DAG's on_failure_callback gets when a task fails for good."""
    failures.record({"ti": SimpleNamespace(task_id=task_id, map_index=map_index, run_id=run_id, try_number=1),
                     "exception": error})


def test_a_reason_is_one_line_naming_the_field_and_the_allowed_values():
    error = ConfError("invalid run parameters:\n- top_n (5) must be at most max_trials (3)\n- " + SPACE)
    assert failures.one_line(error) == f"invalid run parameters: top_n (5) must be at most max_trials (3); {SPACE}"
    assert failures.one_line(PodFailed(PREPARE)) == PREPARE  # the pod's classification, as raised
    assert failures.one_line(KeyError("model_path")) == "KeyError: 'model_path'"  # a bug keeps its type
    assert "\n" not in failures.one_line(RuntimeError("a\nb\n" + "x" * 2000))
    assert len(failures.one_line(RuntimeError("x" * 2000))) <= failures.MAX_REASON


def test_a_failed_task_records_its_reason_with_the_run(root):
    fail("validate_params", ConfError(f"invalid run parameters:\n- {SPACE}"))
    fail("training.train", PodFailed("exit status 1: error: out of memory"), map_index=1)
    recorded = failures.read(str(root / "runs" / RUN_ID))
    assert set(recorded) == {"validate_params", "training.train_1"}
    assert recorded["validate_params"]["reason"] == f"invalid run parameters: {SPACE}"
    fail("prepare_data", PodFailed("x"), run_id="other")
    assert set(failures.read(str(root / "runs" / RUN_ID))) == {"validate_params", "training.train_1"}


def test_the_first_failure_is_the_earliest_reason_else_the_first_task_stopped():
    recorded = {"tuning.tune_0": {"key": "tuning.tune_0", "reason": "exit status 2: bad", "at": 1.0},
                "tuning.wait_oracle": {"key": "tuning.wait_oracle", "reason": "the chief failed", "at": 2.0}}
    states = {"tuning.tune_0": "failed", "tuning.wait_oracle": "failed", "aggregate_top_n": "failed"}
    assert failures.cause(states, recorded) == {"task": "tuning.tune_0", "reason": "exit status 2: bad"}
    killed = {"tuning.tune_0": "failed", "tuning.tune_1": "failed", "tuning.wait_oracle": "failed",
              "aggregate_top_n": "skipped"}
    assert failures.cause(killed, {}) == {"task": "tuning.wait_oracle", "reason": failures.STOPPED}
    assert failures.cause({"tuning.tune_0": "failed", "summarize": "failed"}, {})["task"] == "tuning.tune_0"
    assert failures.cause({"validate_params": "success"}, {}) is None


def test_a_refused_run_has_a_summary_that_says_why(root):
    """validate_params failed: there is no plan, and summarize still writes what it knows."""
    fail("validate_params", ConfError(f"invalid run parameters:\n- {SPACE}"))
    states = {"validate_params": "failed", "prepare_data": "upstream_failed", "summarize": "running"}
    plan = summaries.unplanned(RUN_ID, {"model_name": "diamonds"})
    summary = summaries.build(plan, None, None, None, states,
                              failures=failures.read(str(root / "runs" / RUN_ID)))
    assert summary["failure"] == {"task": "validate_params", "reason": f"invalid run parameters: {SPACE}"}
    assert summary["outcome"] == f"nothing deployed: validate_params failed: invalid run parameters: {SPACE}"
    assert summary["failed_steps"] == ["prepare_data", "validate_params"]
    assert summary["model_name"] == "diamonds" and summary["deployed"] is None


@pytest.mark.parametrize("task, reason", [
    ("prepare_data", PREPARE),
    ("training.train_1", "exit status 1: error: ResourceExhaustedError: OOM when allocating tensor"),
])
def test_a_pod_failure_is_the_outcome_with_its_classification(task, reason):
    states = {"validate_params": "success", task: "failed", "summarize": "running"}
    recorded = {task: {"key": task, "reason": reason, "at": 5.0}}
    summary = summaries.build({"run_id": RUN_ID, "model_name": "m"}, [], [], None, states, failures=recorded)
    assert summary["outcome"] == f"nothing deployed: {task} failed: {reason}"
    assert run_note.text(summary) == summary["outcome"]


def test_a_summary_records_the_best_trial_and_the_data_rows():
    search = {"trials": [{"trial_id": "3", "objective": 410.5}, {"trial_id": "1", "objective": 420.0}],
              "objective": {"name": "val_mae", "direction": "min"}}
    summary = summaries.build({"run_id": RUN_ID, "model_name": "m"}, [], [], None, {}, search=search,
                              prepared={"train_examples": 1200, "eval_examples": 300})
    assert summary["best"] == {"objective": "val_mae", "direction": "min", "value": 410.5, "trial_id": "3"}
    assert summary["data_rows"] == {"train": 1200, "eval": 300}
    assert summary["failure"] is None


def test_the_note_of_a_run_without_a_summary_names_its_first_failed_task(root):
    fail("prepare_data", PodFailed(PREPARE))
    facts = {"state": "failed", "tasks": {"validate_params": "success", "prepare_data": "failed",
                                          "tuning.start_oracle": "upstream_failed"}, "cancelled": None}
    assert note_listener.note_for(RUN_ID, None, facts) == f"nothing deployed: prepare_data failed: {PREPARE}"
    unknown = note_listener.note_for(RUN_ID, None, None)
    assert "before summarize recorded it" not in unknown and "could not be read" in unknown


def test_the_note_of_a_cancelled_run_says_who_and_during_what(root):
    facts = {"state": "failed", "cancelled": {"by": "admin", "at": 1.0},
             "tasks": {"validate_params": "success", "prepare_data": "success", "tuning.start_oracle": "success",
                       "tuning.tune_0": "failed", "tuning.tune_1": "failed", "tuning.wait_oracle": "failed",
                       "tuning.stop_oracle": "success", "aggregate_top_n": "skipped", "summarize": "failed"}}
    line = ("cancelled by admin during tuning.tune, tuning.wait_oracle: nothing deployed "
            "(stopped: tuning.tune_0, tuning.tune_1, tuning.wait_oracle)")
    assert note_listener.note_for(RUN_ID, None, facts) == line
    # summarize ran after the cancel (a teardown): its summary does not change the line
    run = root / "runs" / RUN_ID
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps(summaries.build(
        {"run_id": RUN_ID, "model_name": "m"}, None, None, None, facts["tasks"])))
    assert note_listener.note_for(RUN_ID, line, facts) is None
    anonymous = {**facts, "cancelled": {"by": None, "at": 1.0}}
    assert note_listener.note_for(RUN_ID, None, anonymous).startswith("cancelled during tuning.tune")


def assert_no_server_path(text: str, root) -> None:
    assert str(root) not in text and str(root.parent) not in text
    assert '{"detail"' not in text


def test_the_view_of_a_refused_run_shows_why_without_a_path(client, root):
    fail("validate_params", ConfError(f"invalid run parameters:\n- {SPACE}"))
    fail("summarize", AirflowFailException("failed steps: validate_params: nothing deployed: …"))
    run = root / "runs" / RUN_ID
    (run / "summary.json").write_text(json.dumps(summaries.build(
        summaries.unplanned(RUN_ID, {"model_name": "diamonds"}), None, None, None,
        {"validate_params": "failed"}, failures=failures.read(str(run)))))
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 200, response.text
    outcome = re.search(r'<p id="run-outcome" class="banner failed">([^<]*)</p>', response.text).group(1)
    assert outcome == f"nothing deployed: validate_params failed: invalid run parameters: {SPACE}"
    assert 'data-failed-task="validate_params"' in response.text
    assert 'data-failed-task="summarize"' not in response.text  # it only repeats the others
    assert "yet" not in response.text
    assert_no_server_path(response.text, root)


def test_the_view_of_an_ended_run_without_a_summary_names_its_failure(client, root, monkeypatch):
    fail("prepare_data", PodFailed(PREPARE))
    monkeypatch.setattr(view.airflow_runs, "facts", lambda run_id: {
        "state": "failed", "cancelled": None, "tasks": {"validate_params": "success", "prepare_data": "failed"}})
    text = client.get(f"/runs/{RUN_ID}").text
    assert f"nothing deployed: prepare_data failed: {PREPARE}" in text
    assert "No search result was recorded" in text and "yet" not in text
    assert_no_server_path(text, root)


def test_the_view_of_a_run_before_its_search_renders(client, root, monkeypatch):
    monkeypatch.setattr(view.airflow_runs, "facts", lambda run_id: {
        "state": "running", "cancelled": None, "tasks": {"validate_params": "success", "prepare_data": "running"}})
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 200
    assert "the run is running (now: prepare_data): nothing decided yet" in response.text
    assert "no result so far" in response.text
    assert_no_server_path(response.text, root)


def test_an_unknown_run_is_a_page_not_json(client, root):
    response = client.get("/runs/never-ran")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert "No run &#x27;never-ran&#x27;" in response.text
    assert_no_server_path(response.text, root)
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_summarize_writes_a_summary_for_a_run_without_a_plan(root):
    """The DAG's own summarize, as a worker runs it after validate_params refused the run."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException
    from conftest import REPO

    dag = DagBag(dag_folder=str(REPO / "dags")).dags["tune_train_serve"]
    assert dag.default_args["on_failure_callback"] is failures.record
    fail("validate_params", ConfError(f"invalid run parameters:\n- {SPACE}"))
    ti = SimpleNamespace(run_id=RUN_ID, dag_id=dag.dag_id, get_task_states=lambda dag_id, run_ids: {
        RUN_ID: {"validate_params": "failed", "prepare_data": "upstream_failed", "summarize": "running"}})
    summarize = dag.get_task("summarize").python_callable
    with pytest.raises(AirflowFailException, match="validate_params failed"):
        summarize(None, None, None, None, None, None, None, params={"model_name": "diamonds"}, ti=ti, dag=dag)
    summary = json.loads((root / "runs" / RUN_ID / "summary.json").read_text())
    assert summary["outcome"] == f"nothing deployed: validate_params failed: invalid run parameters: {SPACE}"
    assert summary["model_name"] == "diamonds"


def test_the_view_during_the_search_shows_the_trials_finished_so_far(client, root, monkeypatch):
    """No result from the chief yet: the Keras Tuner project's trials (trial.json and the tuner's outcome)."""
    tuning = root / "runs" / RUN_ID / "tuning"
    (tuning / "trial_00").mkdir(parents=True)
    (tuning / "trial_01").mkdir()
    (tuning / "search.json").write_text(json.dumps({"objective": "val_mae", "direction": "min"}))
    (tuning / "trial_00" / "trial.json").write_text(json.dumps({
        "trial_id": "00", "status": "COMPLETED", "score": 512.5,
        "hyperparameters": {"values": {"units": 32, "learning_rate": 0.01, "tuner/epochs": 2}}}))
    (tuning / "trial_00" / "outcome-tuner-1.json").write_text(json.dumps({
        "epochs": 2, "seconds": 3.0, "started_at": 1.7e9, "ended_at": 1.7e9 + 3}))
    (tuning / "trial_01" / "trial.json").write_text(json.dumps({
        "trial_id": "01", "status": "RUNNING", "score": None,
        "hyperparameters": {"values": {"units": 64, "learning_rate": 0.001}}}))
    monkeypatch.setattr(view.airflow_runs, "facts", lambda run_id: {
        "state": "running", "cancelled": None, "tasks": {"tuning.tune_0": "running", "tuning.wait_oracle": "deferred"}})
    text = client.get(f"/runs/{RUN_ID}").text
    assert re.findall(r'data-trial-id="(\d+)"', text) == ["00", "01"]
    assert "The search is under way: 1 trials completed so far, 1 running; objective val_mae (min)." in text
    assert "tuner-1" in text and "tuner/epochs" not in text
    assert re.search(r'id="plot-objective" data-plot data-expected-marks="1"', text)
    assert "<td>running</td>" in text
    assert_no_server_path(text, root)
