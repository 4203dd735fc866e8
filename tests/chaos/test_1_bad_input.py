"""Case 7: bad confs, from the REST trigger (what the trigger form posts) and from the CLI.

Each one is rejected before any training: refused at trigger time by the Params' JSON
schema or, through the REST API (what the form posts), by the rules across fields
(tune_serve.web.trigger_guard); or the run fails in `validate_params` (rules across fields, for a run
triggered from the CLI) or in `prepare_data`
(exit 2: rules that need the data), with no tuner or trainer ever started. The message names
the field and what is allowed. Runs first and alone, so "nothing under the storage or serving
roots changes" is checked over the whole of both roots.
"""
from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from chaos_helpers import (
    DAG_ID,
    LocalProcess,
    _retrying,
    dag_run,
    iso_seconds,
    read_json,
    task_instances,
    tree,
    trigger,
    wait_run,
)

pytestmark = pytest.mark.chaos

TINY = {"sample_rows": 1000, "max_trials": 3, "num_tuners": 1, "tuning_epochs": 2, "top_n": 1, "training_epochs": 3,
        "early_stopping_patience": 2, "model_name": "chaos-bad"}
TRIGGER, VALIDATE, PREPARE = "refused at trigger", "failed in validate_params", "failed in prepare_data"


@dataclass
class Bad:
    name: str
    conf: dict                  # merged over TINY; "{csv}" in a value is the generated CSV's path
    stage: str                  # where it must be rejected
    expect: tuple[str, ...]     # regexes the message must match: the field, and what is allowed
    via: str = "rest"
    outcome: dict = field(default_factory=dict)


BAD = [
    # refused by the schema when the run is created (the form validates the same schema)
    Bad("wrong type: max_trials string", {"max_trials": "4"}, TRIGGER, ("max_trials", "is not of type 'integer'")),
    Bad("wrong type: tuning_epochs float", {"tuning_epochs": 2.5}, TRIGGER, ("tuning_epochs", "of type 'integer'")),
    Bad("wrong type: executions_per_trial bool", {"executions_per_trial": True}, TRIGGER,
        ("executions_per_trial", "of type 'integer'")),
    Bad("out of range: max_trials 0", {"max_trials": 0}, TRIGGER, ("max_trials", "allowed: 1 to 10,000")),
    Bad("out of range: num_tuners 1000", {"num_tuners": 1000}, TRIGGER, ("num_tuners", "allowed: 1 to 256")),
    Bad("out of range: eval_fraction 1.5", {"eval_fraction": 1.5}, TRIGGER, ("eval_fraction", "maximum of 1")),
    Bad("out of range: sample_rows 10", {"sample_rows": 10}, TRIGGER, ("sample_rows", "allowed: at least 100")),
    Bad("unknown algorithm", {"algorithm": "annealing"}, TRIGGER,
        ("algorithm", r"'random', 'bayesian', 'hyperband', 'grid'")),
    Bad("unknown benchmark objective", {"objective_function": "rosenbrock"}, TRIGGER,
        ("objective_function", "'branin', 'sleep'")),
    Bad("search space not a list", {"search_space": "units=16..128"}, TRIGGER,
        ("search_space", "of type 'null', 'array'")),
    Bad("search space: unknown type", {"search_space": [{"name": "units", "type": "integer", "min": 16, "max": 64}]},
        TRIGGER, ("search_space", "'int', 'float', 'choice'")),
    Bad("search space: unknown key",
        {"search_space": [{"name": "units", "type": "int", "min": 1, "max": 4, "stepsize": 1}]},
        TRIGGER, ("search_space", r"Additional properties are not allowed \('stepsize'")),
    Bad("search space: empty", {"search_space": []}, TRIGGER, ("search_space", "non-empty|too short")),
    Bad("unknown task", {"task": "ranking"}, TRIGGER, ("task", "'auto', 'regression', 'binary', 'multiclass'")),
    Bad("classification objective on a regression", {"task": "regression", "objective": "val_auc"}, TRIGGER,
        ("objective", "'val_auc' is not reported for a regression task; allowed: val_mae")),
    Bad("direction contradicting the objective", {"objective": "val_auc", "direction": "min", "task": "binary"},
        TRIGGER, ("direction", "must be 'max'")),
    Bad("threshold of the wrong sign: mae_upper_bound", {"mae_upper_bound": -1.0}, TRIGGER,
        ("mae_upper_bound", "less than or equal to the minimum of 0")),
    Bad("threshold of the wrong sign: max_mae_increase", {"max_mae_increase": -0.5}, TRIGGER,
        ("max_mae_increase", "less than the minimum of 0")),
    Bad("model name not a DNS label", {"model_name": "Bad Name!"}, TRIGGER, ("model_name", re.escape("^[a-z0-9]"))),
    # rules across fields: refused when triggered through the REST API, before the run exists
    Bad("top_n > max_trials", {"top_n": 5, "max_trials": 3}, TRIGGER, ("top_n", r"at most max_trials \(3\)")),
    Bad("direction max for an error", {"direction": "max"}, TRIGGER, ("direction", "must be 'min'")),
    Bad("patience > training epochs", {"early_stopping_patience": 10}, TRIGGER,
        ("early_stopping_patience", r"at most training_epochs \(3\)")),
    Bad("search space: min >= max",
        {"search_space": [{"name": "learning_rate", "type": "float", "min": 0.1, "max": 0.01}]},
        TRIGGER, (r"search_space\.learning_rate\.min", "must be < max")),
    Bad("grid over a continuous space", {"algorithm": "grid", "search_space": [
        {"name": "learning_rate", "type": "float", "min": 0.001, "max": 0.1}]}, TRIGGER,
        ("search_space.learning_rate", "the grid algorithm needs every parameter discrete")),
    Bad("model: a path, not a dotted name", {"model": "../models/x.py:build"}, TRIGGER, ("model", "does not match")),
    Bad("model: not in the models folder", {"model": "json:loads"}, TRIGGER,
        ("model", "no module json in the models folder")),
    # outside the data roots: refused naming the setting, never saying whether the file exists
    Bad("dataset file outside the data roots", {"source": "/nonexistent/diamonds.csv", "label": "price"}, TRIGGER,
        ("source", "not under TUNE_SERVE_DATA_ROOTS", "bundled dataset")),
    Bad("CSV without a label", {"source": "{csv}"}, TRIGGER, ("label", "required for a source other than")),
    Bad("feature spec: unknown key", {"feature_spec": {"numerik": ["carat"]}}, TRIGGER,
        ("feature_spec", "allowed: label, numeric, categorical")),
    # rules that need the data: prepare_data exits 2, having written nothing
    Bad("label absent from the CSV", {"source": "{csv}", "label": "weight"}, PREPARE,
        ("--label", r"not in .* \(columns: .*carat")),
    # a text label is a classification: a regression on it, or an objective of the other task, is refused
    Bad("text label for a regression", {"source": "{csv}", "label": "cut", "task": "regression"}, PREPARE,
        ("--task", "regression needs a numeric label; 'cut' is a text label", "allowed: regression, binary")),
    Bad("regression objective on an inferred classifier", {"source": "{csv}", "label": "cut", "objective": "val_mae"},
        PREPARE, ("--objective", "'val_mae' is not reported for a multiclass task; allowed: val_auc")),
    Bad("unknown feature", {"source": "{csv}", "label": "price", "features": ["carat", "depthh"]}, PREPARE,
        ("--features", r"'depthh' not in .*columns: ")),
    Bad("model: not a builder", {"model": "tune_serve_models.tabular:DEFAULT_HYPERPARAMETERS"}, PREPARE,
        ("--model", "tune_serve_models.tabular:DEFAULT_HYPERPARAMETERS is not callable")),
    Bad("search space: a name the model does not declare", {"model": "tune_serve_models.wide_and_deep:build",
                                                           "search_space": [{"name": "units", "type": "int",
                                                                             "min": 8, "max": 64}]},
        PREPARE, (r"--search-space\.units", "not a hyperparameter of tune_serve_models.wide_and_deep:build; "
                                             "it declares: num_hidden_layers")),
    # the same rules through `airflow dags trigger --conf`
    Bad("CLI: wrong type", {"max_trials": "four"}, TRIGGER, ("max_trials", "of type 'integer'"), via="cli"),
    Bad("CLI: unknown algorithm", {"algorithm": "annealing"}, TRIGGER, ("algorithm", "'random', 'bayesian'"),
        via="cli"),
    Bad("CLI: top_n > max_trials", {"top_n": 4, "max_trials": 2, "num_tuners": 1}, VALIDATE,
        ("top_n", r"at most max_trials \(2\)"), via="cli"),
    Bad("CLI: binary task on 4 classes", {"source": "{csv}", "label": "colour", "task": "binary"}, PREPARE,
        ("--task", "binary needs exactly 2 classes"), via="cli"),
]


def _conf(bad: Bad, csv: str) -> dict:
    conf = {**TINY, **bad.conf}
    return json.loads(json.dumps(conf).replace("{csv}", csv))


def _write_csv(path) -> None:
    rows = ["carat,cut,colour,price"]
    cuts, colours = ["Fair", "Good", "Ideal"], ["D", "E", "F", "G"]
    for i in range(300):
        rows.append(f"{0.2 + (i % 40) / 20:.2f},{cuts[i % 3]},{colours[i % 4]},{300 + 17 * i}")
    path.write_text("\n".join(rows) + "\n")


def _run_id(i: int, bad: Bad) -> str:
    return f"bad-{i:02d}-" + re.sub(r"[^a-z0-9]+", "-", bad.name.lower()).strip("-")[:40]


@pytest.fixture(scope="module")
def rejected(stack, tmp_path_factory):
    """Trigger every bad conf (REST at once, CLI two at a time), wait for the runs to end."""
    csv = tmp_path_factory.mktemp("data") / "diamonds_small.csv"
    _write_csv(csv)
    before = {"storage": tree(stack.storage), "serving": tree(stack.serving)}
    client = stack.client

    def rest(i: int, bad: Bad) -> None:
        started = time.time()
        try:
            bad.outcome["run_id"] = trigger(client, _conf(bad, str(csv)), _run_id(i, bad))
        except ValueError as exc:
            bad.outcome.update(refused=True, message=str(exc), seconds=time.time() - started)

    def cli(i: int, bad: Bad) -> None:
        started = time.time()
        for _ in range(5):
            out = stack.cli("dags", "trigger", DAG_ID, "--run-id", _run_id(i, bad), "--conf",
                            json.dumps(_conf(bad, str(csv))))
            if "database is locked" not in out.stderr:  # SQLite under load: nothing was done, try again
                break
        if out.returncode != 0:
            bad.outcome.update(refused=True, message=out.stderr[-3000:], seconds=time.time() - started)
        else:
            bad.outcome["run_id"] = _run_id(i, bad)

    for i, bad in enumerate(BAD):
        if bad.via == "rest":
            rest(i, bad)
    with ThreadPoolExecutor(max_workers=2) as pool:  # each CLI call is ~10 s of CPU on this machine
        list(pool.map(lambda item: cli(*item), [(i, b) for i, b in enumerate(BAD) if b.via == "cli"]))

    for bad in BAD:
        if "run_id" in bad.outcome:
            run_id = bad.outcome["run_id"]
            bad.outcome["state"] = wait_run(client, run_id, timeout=600)
            run = dag_run(client, run_id)
            bad.outcome["seconds"] = iso_seconds(run["end_date"]) - iso_seconds(run["start_date"])
            bad.outcome["tis"] = {(t["task_id"], t["map_index"]): t for t in task_instances(client, run_id)}
    after = {"storage": tree(stack.storage), "serving": tree(stack.serving)}
    return {"bad": BAD, "before": before, "after": after}


def _message(stack, bad: Bad) -> str:
    """Why it was rejected, from where the rejection is stored: the trigger's answer, the
    failed task's log, or the pod's one-line reason (its last `error:` line)."""
    outcome = bad.outcome
    if outcome.get("refused"):
        return outcome["message"]
    if bad.stage == VALIDATE:
        return _retrying(lambda: stack.client.task_log(outcome["run_id"], "validate_params"))
    tries = stack.pods.tries(outcome["run_id"], "prepare_data")
    return LocalProcess(tries[-1]).reason() if tries else ""


# Tasks that may run after a rejection: the two that reject, and the ones whose trigger rule runs
# them after any outcome and that only fail with the reason (aggregate_top_n: "the search did not
# finish"; summarize: records the failed steps).
RAN_ANYWAY = {"validate_params", "prepare_data", "aggregate_top_n", "summarize"}


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_bad_conf_is_rejected_before_any_training(stack, rejected, results, bad):
    with results.fault(7, f"bad conf ({bad.via}): {bad.name}", bad.outcome.get("run_id"),
                       stage=bad.stage) as record:
        outcome = bad.outcome
        message = _message(stack, bad)
        lines = [line for line in message.splitlines() if re.search(bad.expect[0], line)]
        best = [line for line in lines if re.search(bad.expect[-1], line)] or lines or [""]
        record["message"] = best[0][:300]
        record["cost"] = {"seconds_to_rejection": round(outcome.get("seconds", 0), 1)}
        if bad.stage == TRIGGER:
            assert outcome.get("refused"), f"accepted at trigger time as run {outcome.get('run_id')}"
            assert stack.client.http.get(f"/dags/{DAG_ID}/dagRuns/{_run_id(BAD.index(bad), bad)}").status_code == 404
        else:
            assert not outcome.get("refused"), f"refused at trigger, expected {bad.stage}: {outcome.get('message')}"
            assert outcome["state"] == "failed"
            states = {k: (t["state"], t["try_number"]) for k, t in outcome["tis"].items()}
            failed = "validate_params" if bad.stage == VALIDATE else "prepare_data"
            assert states[(failed, -1)] == ("failed", 1), states  # bad input: never retried
            if bad.stage == PREPARE:
                assert states[("validate_params", -1)][0] == "success"
                tries = stack.pods.tries(outcome["run_id"], "prepare_data")
                assert len(tries) == 1 and LocalProcess(tries[0]).exit_code() == 2  # exit 2: bad input
            ran = sorted(f"{task}[{index}]" for (task, index), (state, tries) in states.items()
                         if tries > 0 and task not in RAN_ANYWAY)
            assert not ran, f"tasks ran after a bad conf: {ran}"
            assert not stack.pods.tries(outcome["run_id"], "training.train", 0)
        for pattern in bad.expect:
            assert re.search(pattern, message), f"{pattern!r} not in the message:\n{message[-1500:]}"


def test_nothing_under_storage_or_serving_changes(stack, rejected):
    before, after = rejected["before"], rejected["after"]
    assert after["serving"] == before["serving"]
    # A run that failed in validate_params or prepare_data still gets its summary.json (summarize
    # records every run's outcome) and the one-line reason of each task that failed for good
    # (failures/{task}.json, issue 28: the failed step's, and those of the steps it failed, such as
    # aggregate_top_n's and summarize's); nothing else may appear, and nothing from prepare (no data/,
    # no temp dirs).
    failed_task = {VALIDATE: "validate_params", PREPARE: "prepare_data"}
    runs = {f"runs/{b.outcome['run_id']}": failed_task[b.stage] for b in BAD
            if b.stage in failed_task and "run_id" in b.outcome}
    allowed = {p for run in runs for p in (run, f"{run}/summary.json", f"{run}/failures")}
    allowed |= {"runs"} if runs else set()
    new = set(after["storage"]) - set(before["storage"])
    reasons = {p for p in new if p.endswith(".json") and p.rsplit("/failures/", 1)[0] in runs and "/failures/" in p
               and p.count("/") == 3}
    assert new - reasons <= allowed, sorted(new - reasons - allowed)
    for run, task in runs.items():
        if f"{run}/summary.json" in new:
            summary = read_json(stack.storage / run / "summary.json")
            assert task in summary["failed_steps"] and summary["deployed"] is None, summary
    assert {k: v for k, v in after["storage"].items() if k in before["storage"]} == before["storage"]
