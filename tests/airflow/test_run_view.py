"""The run view in-process, on a stored run written as the trainer writes it (docs/contracts.md).
Who may call it is Airflow's auth manager, the artifact viewer's dependency (proven through a
real API server in test_artifacts_auth.py); here it is replaced by an allowed caller. The
browser test (tests/e2e/test_ui_browser.py) renders the same page from a real run."""
import json
import re

import pytest

from tune_serve.web.ui import app as view
from tune_serve.web.ui import run_state
from tune_serve.workflow import run_note

RUN_ID = "manual__2026-11-29T08:00:00+00:00"


def trial(trial_id, objective, tuner, units, rate, resumed=0, start=1_700_000_000.0):
    return {"trial_id": trial_id, "hyperparameters": {"units": units, "learning_rate": rate, "act": "relu"},
            "objective": objective, "status": "COMPLETED", "epochs": 2, "seconds": 3.5, "tuner_id": tuner,
            "resumed_from_epoch": resumed, "started_at": start, "ended_at": start + 3.5}


def write_run(root, deployed=True):
    run = root / "runs" / RUN_ID
    (run / "tuning").mkdir(parents=True)
    trials = [trial("00", 500.0, "tuner-0", 32, 0.01), trial("01", 450.0, "tuner-1", 64, 0.001, resumed=1),
              trial("02", 700.0, "tuner-0", 16, 0.1, start=1_700_000_004.0),
              trial("03", 480.0, "tuner-0", 128, 0.003, start=1_700_000_008.0)]
    lost = {**trial("04", None, "tuner-1", 8, 0.5), "status": "FAILED", "objective": None, "epochs": None,
            "seconds": None, "started_at": None, "ended_at": None}  # no outcome: no tuner finished it
    ranked = sorted(trials, key=lambda t: t["objective"])
    (run / "tuning" / "oracle_result.json").write_text(json.dumps({
        "trials": ranked, "completed": 4, "max_trials": 5, "incomplete": [lost], "lost_tuners": ["tuner-1"],
        "objective": {"name": "val_mae", "direction": "min"}, "deadline_hit": False}))
    (run / "tuning" / "oracle.json").write_text(json.dumps({"leases": {"handoffs": {"03": 1, "04": 3}}}))
    evaluations = [
        {"rank": 0, "blessed": True, "overall": {"mae": 411.9}, "baseline": {"overall": {"mae": 420.2}},
         "failed_thresholds": [], "reasons": ["MAE 411.9 is within 10 of the serving model's 420.2"]},
        {"rank": 1, "blessed": False, "overall": {"mae": 1238.0}, "baseline": {"overall": {"mae": 420.2}},
         "failed_thresholds": [{"metric": "mae", "value": 1238.0, "threshold": 1000.0}],
         "reasons": ["MAE 1,238 > bound 1,000"]}]
    for e in evaluations:
        (run / "eval" / str(e["rank"])).mkdir(parents=True)
        (run / "eval" / str(e["rank"]) / "evaluation.json").write_text(json.dumps(e))
    (run / "models" / "0" / "logs").mkdir(parents=True)
    (run / "models" / "0" / "logs" / "history.csv").write_text(
        "epoch,loss,mae,val_loss,val_mae\n0,9,900,8,800\n1,5,500,6,600\n1,5,490,6,590\n2,4,400,5,450\n")
    (run / "models" / "0" / "training.json").write_text(json.dumps({"epochs": 3, "logs": f"{run}/models/0/logs"}))
    top = [{"rank": 0, "trial_id": "01", "objective": 450.0, "hyperparameters": ranked[0]["hyperparameters"]},
           {"rank": 1, "trial_id": "03", "objective": 480.0, "hyperparameters": ranked[1]["hyperparameters"]}]
    summary = {"run_id": RUN_ID, "model_name": "diamonds", "leaderboard": top,
               "evaluations": [{k: e[k] for k in ("rank", "blessed", "failed_thresholds", "overall", "reasons")}
                               for e in evaluations],
               "deployed": {"model_name": "diamonds", "version": 3, "previous_version": 2, "candidate_rank": 0,
                            "eval_mae": 411.9} if deployed else None,
               "lost_tuner_tasks": [], "failed_steps": []}
    (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(root))
    write_run(root)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "tuning").mkdir()
    (tmp_path / "secret" / "tuning" / "oracle_result.json").write_text("{}")
    return root


@pytest.fixture
def client(root, view_client):
    return view_client()


def test_every_trial_with_its_status(root):
    state = run_state.load(RUN_ID)
    statuses = {t["trial_id"]: t["status"] for t in state.trials}
    assert statuses == {"00": "completed", "01": "resumed after preemption", "02": "completed",
                        "03": "handed over", "04": "lost"}
    assert {t["trial_id"]: t["top_rank"] for t in state.trials if t["top_rank"] is not None} == {"01": 0, "03": 1}


def test_parameter_importance_is_fitted_once_per_set_of_trials(root, monkeypatch):
    """Sorting the table re-renders the page; the forest is refitted only when the trials change."""
    import sklearn.ensemble

    from tune_serve.web.ui import charts

    fits = []
    real = sklearn.ensemble.RandomForestRegressor
    monkeypatch.setattr(sklearn.ensemble, "RandomForestRegressor", lambda **kw: fits.append(kw) or real(**kw))
    charts._importances.cache_clear()
    state = run_state.load(RUN_ID)
    first = charts.importance(state)
    assert charts.importance(run_state.load(RUN_ID)) == first and len(fits) == 1
    state.completed[0]["objective"] += 1.0  # another result: another fit
    charts.importance(state)
    assert len(fits) == 2


def test_page_shows_every_trial_the_plots_and_what_shipped(client):
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 200, response.text
    text = response.text
    assert re.findall(r'data-trial-id="(\d+)"', text) == ["01", "03", "00", "02", "04"]  # best first, lost last
    assert text.count('class="badge"') == 2
    assert "deployed diamonds v3 (candidate 0, MAE 411.9, was 420.2)" in text
    assert "MAE 1,238 &gt; bound 1,000" in text
    marks = dict(re.findall(r'id="(plot-[a-z]+|curves-\d)" data-plot data-expected-marks="(\d+)"', text))
    assert marks == {"plot-objective": "4", "plot-parallel": "4", "plot-scatter": "12", "plot-importance": "3",
                     "plot-timeline": "4", "curves-0": "2"}
    assert "tensorboard --logdir" in text
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_leaderboard_sorts_by_any_column(client):
    text = client.get(f"/runs/{RUN_ID}", params={"sort": "trial_id", "desc": 1}).text
    assert re.findall(r'data-trial-id="(\d+)"', text) == ["04", "03", "02", "01", "00"]


def test_history_keeps_the_last_row_of_an_epoch_logged_twice(root):
    rows = run_state.history((root / "runs" / RUN_ID / "models/0/logs/history.csv").read_text())
    assert [(r["epoch"], r["val_mae"]) for r in rows] == [(0, 800.0), (1, 590.0), (2, 450.0)]


@pytest.mark.parametrize("run_id", ["..", ".", "a/b", "../secret", "a\\b", ""])
def test_a_run_id_is_never_a_path(root, run_id):
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as refused:
        run_state.run_root(run_id)
    assert refused.value.status_code == 400 and "not a run id" in refused.value.detail


def test_a_run_id_that_decodes_to_dot_dot_is_refused_over_http(client, root):
    # %2E%2E reaches the route as ".."; unchecked, the storage root itself would be the "run"
    (root / "tuning").mkdir()
    (root / "tuning" / "oracle_result.json").write_text('{"trials": []}')
    response = client.get("/runs/%2E%2E")
    assert response.status_code == 400, response.text


def test_assets_are_served_by_name_only(client):
    assert client.get("/static/vega.min.js").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/SHA256SUMS").status_code == 404


def test_the_run_list_names_airflows_runs_with_their_stored_outcome(client, monkeypatch):
    """The list's runs are Airflow's (paged by its database: test_runs_list.py); each row adds its summary."""
    run = {"run_id": RUN_ID, "state": "success", "trigger": "manual", "user": "ada", "started": 1.7e9,
           "ended": 1.7e9 + 60, "seconds": 60.0, "note": None}
    monkeypatch.setattr(view.airflow_runs, "runs", lambda *args: (1, [run]))
    text = client.get("/runs").text
    assert f'href="runs/{RUN_ID.replace(":", "%3A").replace("+", "%2B")}"' in text
    assert "deployed diamonds v3 (candidate 0" in text


def test_run_note_says_first_version_only_when_nothing_was_serving():
    summary = {"deployed": {"model_name": "m", "version": 1, "candidate_rank": 0, "eval_mae": 5.0}}
    assert run_note.text(summary, [{"rank": 0, "baseline_model_path": None, "baseline": None}]) == \
        "deployed m v1 (candidate 0, MAE 5.0, first version)"
    assert run_note.text(summary, [{"rank": 0}]) == "deployed m v1 (candidate 0, MAE 5.0)"  # not known


def test_run_note_names_the_reason_when_nothing_shipped(tmp_path):
    summary = json.loads((write_run(tmp_path, deployed=False) / "summary.json").read_text())
    assert run_note.text(summary) == ("nothing deployed: a candidate was blessed but its deployment did not complete "
                                      "(see serving.deploy_serving)")
    summary["evaluations"][0]["blessed"] = False
    summary["evaluations"][0]["reasons"] = ["MAE 1,300 > bound 1,000"]
    assert run_note.text(summary) == ("nothing deployed: rank 0 not blessed: MAE 1,300 > bound 1,000 | "
                                      "rank 1 not blessed: MAE 1,238 > bound 1,000")


def test_the_run_note_is_added_below_a_users_note_once(root):
    from tune_serve.web import note_listener

    line = "deployed diamonds v3 (candidate 0, MAE 411.9, was 420.2)"  # the baseline from evaluation.json
    assert note_listener.note_for(RUN_ID, None) == line
    assert note_listener.note_for(RUN_ID, "retune after the data fix") == f"retune after the data fix\n\n{line}"
    assert note_listener.note_for(RUN_ID, line) is None  # already there: nothing to write
    # no summary and no Airflow records to read (issue 28: never "the run ended before summarize recorded it")
    assert note_listener.note_for("never-ran", None).startswith("nothing deployed: no summary was recorded")


def test_the_run_note_says_how_the_search_ran_below_its_outcome(root):
    """A warm start (or why there was none) and early stopping are decisions of the run: they
    are in the Airflow run note too, where the runs list shows them, not only in the run view."""
    from tune_serve.web import note_listener

    summary_file = root / "runs" / RUN_ID / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["search"] = ["early stopping: median (auto for tpe); 3 trial(s) pruned",
                         "warm start from run scheduled__2026-11-28T00:00:00+00:00: 8 trials"]
    summary_file.write_text(json.dumps(summary))
    line = "deployed diamonds v3 (candidate 0, MAE 411.9, was 420.2)"
    search = ("early stopping: median (auto for tpe); 3 trial(s) pruned · "
              "warm start from run scheduled__2026-11-28T00:00:00+00:00: 8 trials")
    assert note_listener.note_for(RUN_ID, None) == f"{line}\n\n{search}"
    assert note_listener.note_for(RUN_ID, f"{line}\n\n{search}") is None  # already there: nothing to write


def test_versions_carry_the_labels_the_serving_platform_routes_now(client, root, tmp_path, monkeypatch):
    """Which label each served version carries comes from the platform that serves (here the
    local one: its model config), not from the run records."""
    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "diamonds.config.json").write_text(json.dumps({"version_labels": {"stable": 3, "canary": 4}}))
    monkeypatch.setenv("TUNE_SERVE_SERVING_ROOT", str(serving))
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "local")
    from tune_serve import config
    config.backend.cache_clear()
    text = client.get(f"/runs/{RUN_ID}").text
    assert re.search(r'<tr><td>3</td><td class="label">stable</td>', text)
    (serving / "diamonds.config.json").write_text(json.dumps({"version_labels": {"stable": 2}}))
    assert re.search(r'<tr><td>3</td><td class="label"></td>', client.get(f"/runs/{RUN_ID}").text)


def test_versions_say_when_the_platform_cannot_be_asked(client, monkeypatch):
    monkeypatch.setattr(view.backend, "current", lambda: (_ for _ in ()).throw(RuntimeError("cluster out of reach")))
    text = client.get(f"/runs/{RUN_ID}").text
    assert "could not be asked for its labels" in text and 'class="label"><span class="muted">unavailable' in text


def test_the_note_listener_leaves_the_schedulers_run_and_session_alone(monkeypatch):
    """The listener runs inside the scheduler's transaction on its DagRun. Reading the run's
    note (another table) or a setting from a Variable there detached the scheduler's objects:
    `make demo`'s run never finished. It may read only the run's ids, and writes from a thread."""
    import threading

    from sqlalchemy.orm.exc import DetachedInstanceError

    from tune_serve import config
    from tune_serve.web import note_listener

    class SchedulersRun:
        dag_id, run_id = "tune_train_serve", RUN_ID

        @property
        def note(self):
            raise DetachedInstanceError("lazy load operation of attribute 'dag_run_note' cannot proceed")

    caller = threading.current_thread()

    def no_settings_in_the_callers_thread(*args, **kwargs):
        assert threading.current_thread() is not caller, "a setting was read in the scheduler's thread"
        return None

    monkeypatch.setattr(config, "setting", no_settings_in_the_callers_thread)
    written = []
    done = threading.Event()
    monkeypatch.setattr(note_listener, "save_note", lambda *ids: (written.append((ids, threading.current_thread())),
                                                                   done.set()))
    note_listener.on_dag_run_success(dag_run=SchedulersRun(), msg="success")
    assert done.wait(10)
    [(ids, thread)] = written
    assert ids == ("tune_train_serve", RUN_ID) and thread is not caller
