"""Early stopping and warm start on the Airflow side (issue 12): the form, the plan, the chief's
command line, what the leaderboard and the run view show."""
from __future__ import annotations

import json

import pytest
from test_params_and_plan import resolved

from tune_contract.steps import OracleArgs, TuneArgs
from tune_serve.workflow import plan as planning
from tune_serve.workflow import warm_start
from tune_serve.workflow.params import ConfError, resolve_objective, validate_conf


@pytest.mark.parametrize("conf,rule", [
    ({}, "median (auto for gp)"),  # the form's default algorithm is gp
    ({"algorithm": "random"}, "off (auto for random: random search is the anchor: its trials run to the end)"),
    ({"early_stopping": "median", "algorithm": "random"}, "median (chosen)"),
    ({"early_stopping": "off"}, "off (early_stopping=off): every trial runs all its epochs"),
])
def test_the_plan_says_which_rule_runs_and_the_chief_and_tuners_get_it(monkeypatch, tmp_path, conf, rule):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    plan = planning.build_plan(resolved(**conf), "run-1")
    assert plan["early_stopping"] == rule
    oracle = OracleArgs.from_argv(planning.oracle_arguments(plan["oracle"], port=1, bind="127.0.0.1"))
    (tune,) = (TuneArgs.from_argv(a) for a in planning.tuner_arguments({**plan, "num_tuners": 1}, "h:1"))
    assert oracle.early_stopping == tune.early_stopping == conf.get("early_stopping", "auto")


def test_a_pruner_on_top_of_hyperband_is_refused_naming_the_field():
    with pytest.raises(ConfError, match=r"early_stopping: asha cannot be combined with the hyperband algorithm"):
        validate_conf(resolved(early_stopping="asha", algorithm="hyperband"))
    validate_conf(resolved(early_stopping="auto", algorithm="hyperband"))


def test_the_form_refuses_an_unknown_rule():
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="early_stopping"):
        resolved(early_stopping="patience")


# -- warm start: the previous successful run of the same model, found on storage ----------------------


def _run(root, run_id, model_name="diamonds", failed=(), finished_at=1.0, search=None, result=True):
    folder = root / "runs" / run_id
    (folder / "tuning").mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"run_id": run_id, "model_name": model_name,
                                                     "failed_steps": list(failed), "finished_at": finished_at}))
    (folder / "tuning" / "search.json").write_text(json.dumps(search))
    if result:
        (folder / "tuning" / "oracle_result.json").write_text(json.dumps({"trials": []}))
    return folder


def _identity(conf):
    return planning._identity(conf, *resolve_objective(conf), None)  # as the chief records it


@pytest.fixture
def storage(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    return tmp_path


def test_the_newest_successful_run_of_the_model_seeds_the_chief(storage):
    conf = resolved()
    search = _identity(conf)
    _run(storage, "run-old", finished_at=1.0, search=search)
    _run(storage, "run-new", finished_at=2.0, search=search)
    _run(storage, "run-failed", finished_at=3.0, search=search, failed=["evaluation.evaluate_0"])
    _run(storage, "run-other-model", model_name="other", finished_at=4.0, search=search)
    _run(storage, "run-unfinished-search", finished_at=5.0, search=search, result=False)
    plan = planning.build_plan(conf, "run-now", planning.find_warm_start(conf, "run-now"))
    assert plan["oracle"]["warm_start_from"] == f"{storage}/runs/run-new"
    assert plan["warm_start"].startswith("warm start from run run-new")
    oracle = OracleArgs.from_argv(planning.oracle_arguments(plan["oracle"], port=1, bind="127.0.0.1"))
    assert oracle.warm_start_from == f"{storage}/runs/run-new"
    assert "warm_start_from" not in plan["tune"]  # the chief's alone


@pytest.mark.parametrize("change,why", [
    ({"tuning_epochs": 7}, "no warm start: run run-1: epochs differs: 3 then, 7 now"),
    ({"search_space": [{"name": "units", "type": "int", "min": 8, "max": 32}]},
     "no warm start: run run-1: search_space differs: removed batch_size, dropout, learning_rate, num_layers"),
    ({"warm_start": False}, "no warm start: turned off (warm_start=false)"),
    ({"model_name": "another"}, "no warm start: no earlier successful run of another"),
])
def test_no_warm_start_says_why(storage, change, why):
    _run(storage, "run-1", search=_identity(resolved()))
    conf = resolved(**change)
    plan = planning.build_plan(conf, "run-2", planning.find_warm_start(conf, "run-2"))
    assert plan["warm_start"] == why and "warm_start_from" not in plan["oracle"]


CLASSIFIER = "tune_serve_models.classifier:build"


def test_a_user_model_s_second_run_is_planned_and_the_chief_decides_after_prepare(storage):
    """Issue 27: a user model without search_space overrides has no space before prepare (its
    search.json records none); the second run of it failed in validate_params."""
    conf = resolved(model=CLASSIFIER, source="titanic", task="binary", objective="val_auc", model_name="titanic")
    _run(storage, "run-1", model_name="titanic", search=_identity(conf))
    plan = planning.build_plan(conf, "run-2", planning.find_warm_start(conf, "run-2"))
    assert plan["oracle"]["warm_start_from"] == f"{storage}/runs/run-1"
    assert plan["warm_start"] == ("warm start from run run-1 if its model's search space and feature spec match "
                                  "(decided by the chief after prepare)")


@pytest.mark.parametrize("search", [
    None, [], "garbage", {"search_space": "garbage"}, {"search_space": [{"name": 1}]},
    {"model": CLASSIFIER, "search_space": None, "epochs": "x"},
])
def test_no_previous_run_s_files_ever_fail_the_plan(storage, search):
    """Whatever the previous run's search.json holds, the run goes on (cold, or warm where the
    chief finds it compatible) and the plan says which."""
    conf = resolved()
    folder = _run(storage, "run-1", search=search)
    if search is None:
        (folder / "tuning" / "search.json").write_text("{not json")
    plan = planning.build_plan(conf, "run-2", planning.find_warm_start(conf, "run-2"))
    assert plan["warm_start"].startswith("no warm start: "), plan["warm_start"]
    assert "warm_start_from" not in plan["oracle"]


def test_without_a_lookup_the_plan_reads_nothing_and_says_so(storage):
    _run(storage, "run-1", search=_identity(resolved()))
    plan = planning.build_plan(resolved(), "run-2")  # e.g. rendering the Kubernetes objects
    assert plan["warm_start"] == "no warm start: no previous run looked up" and "warm_start_from" not in plan["oracle"]


def test_a_run_folder_outside_the_storage_root_is_never_handed_to_the_chief(storage):
    root = str(storage)
    assert warm_start.under_runs(root, f"{root}/runs/run-1")
    for bad in (f"{root}/runs/../x", f"{root}/runs/a/b", "/elsewhere/runs/run-1", f"{root}/runs/.hidden", f"{root}/runs/"):
        assert not warm_start.under_runs(root, bad), bad


# -- what the user sees ----------------------------------------------------------------------------


def test_a_pruned_trial_is_shown_pruned_with_its_reason():
    from tune_serve.web.ui.run_state import PRUNED, trial_status
    from tune_serve.workflow import leaderboard, summaries

    reason = "asha rung at epoch 1: val_mae 812 is not in the best 1/3 of the 4 trial(s) that reached it (cut-off 400)"
    trials = [{"trial_id": "0", "objective": 400.0, "hyperparameters": {"u": 1}},
              {"trial_id": "1", "objective": 812.0, "hyperparameters": {"u": 2}, "pruned": reason}]
    top = leaderboard.top_n(trials, 2, "min")
    assert top[1]["pruned"] == reason and "pruned" not in top[0]
    assert trial_status(trials[1], completed=True, handoffs=0) == PRUNED == "pruned"
    result = {"early_stopping": "median (auto for bayesian)", "trials": trials, "incomplete": [],
              "warm_start": {"from": "run-1", "trials": 5, "note": "warm start from run run-1: 5 trials"}}
    assert summaries.search_notes(result) == ["early stopping: median (auto for bayesian); 1 trial(s) pruned",
                                              "warm start from run run-1: 5 trials"]
