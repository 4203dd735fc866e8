"""Warm start (issue 12): which previous searches may seed a new one, and the seeding on the chief."""
from __future__ import annotations

import json

import pytest

from tune_contract import warm_start as rule
from tune_contract.search_space import DEFAULT_SPACE, validate

SPACE = validate(list(DEFAULT_SPACE)).to_list()
SEARCH = {"algorithm": "bayesian", "search_space": SPACE, "objective": {"name": "val_mae", "direction": "min"},
          "objective_function": None, "epochs": 3, "executions_per_trial": 1, "seed": 42}


def _with(**changes):
    return {**SEARCH, **changes}


def _space(name, **changes):
    return [{**p, **changes} if p["name"] == name else p for p in SPACE]


# (previous search, current search, the reason or None)
SEARCHES = {
    "the same search, another seed": (SEARCH, _with(seed=7), None),
    "a bound tightened (lr 0.1 -> 0.01): compatible, outside points left out": (
        _with(search_space=_space("learning_rate", max=0.1)), SEARCH, None),
    "a choice value added: compatible": (_with(search_space=_space("batch_size", values=[64, 128])), SEARCH, None),
    "another objective": (SEARCH, _with(objective={"name": "val_loss", "direction": "min"}),
                          "objective differs: {'name': 'val_mae', 'direction': 'min'} then, "
                          "{'name': 'val_loss', 'direction': 'min'} now"),
    "more epochs per trial": (SEARCH, _with(epochs=10), "epochs differs: 3 then, 10 now"),
    "a parameter removed": (SEARCH, _with(search_space=[p for p in SPACE if p["name"] != "dropout"]),
                            "search_space differs: removed dropout"),
    "linear instead of log": (SEARCH, _with(search_space=_space("learning_rate", log=False)),
                              "search_space.learning_rate differs: a log float then, a linear float now"),
    "grid": (SEARCH, _with(algorithm="grid"), "algorithm grid: grid enumerates its own points"),
    "hyperband": (SEARCH, _with(algorithm="hyperband"), "algorithm hyperband: hyperband runs its own brackets"),
}


@pytest.mark.parametrize("case", SEARCHES)
def test_search_compatibility(case):
    previous, current, expected = SEARCHES[case]
    assert rule.search_problem(previous, current) == expected


SPEC = {"label": "price", "numeric": {"carat": {}, "depth": {}}, "categorical": {"cut": ["Fair"]}}
SPECS = {
    "new statistics and vocabularies: compatible": ({**SPEC, "categorical": {"cut": ["Fair", "Good"]}}, None),
    "another label": ({**SPEC, "label": "carat"}, "feature spec label differs: 'price' then, 'carat' now"),
    "a feature added": ({**SPEC, "numeric": {"carat": {}, "depth": {}, "x": {}}},
                        "feature spec numeric features differ: added x"),
    "a feature turned categorical": ({**SPEC, "numeric": {"carat": {}}, "categorical": {"cut": [], "depth": []}},
                                     "feature spec numeric features differ: removed depth"),
}


@pytest.mark.parametrize("case", SPECS)
def test_feature_spec_compatibility(case):
    current, expected = SPECS[case]
    assert rule.spec_problem(SPEC, current) == expected


# -- on the chief ----------------------------------------------------------------------------------


def _settings(run_root, algorithm="bayesian", max_trials=4, epochs=2):
    from tune_contract.steps import SearchArgs

    from trainer.tuning.settings import from_args

    return from_args(SearchArgs(run_root=str(run_root), algorithm=algorithm, objective_function="sleep",
                                max_trials=max_trials, epochs=epochs, seed=0, early_stopping="off"))


def _previous_run(root, settings, trials):
    tuning = root / "tuning"
    tuning.mkdir(parents=True)
    (tuning / "search.json").write_text(json.dumps(settings.identity()))
    (tuning / "oracle_result.json").write_text(json.dumps({"trials": trials, "completed": len(trials)}))
    return root


def _chief(settings, warm_from=None):
    from trainer.tuning import warm_start
    from trainer.tuning.distributed.oracles import make_oracle

    oracle = make_oracle(settings, lease_seconds=30.0)
    oracle._set_project_dir(settings.args.run_root, "tuning")
    if (settings.args.run_root and (__import__("pathlib").Path(settings.args.run_root) / "tuning" / "oracle.json").exists()):
        oracle.reload()
        return oracle, oracle.warm_start
    oracle.save()
    return oracle, warm_start.seed(oracle, settings, str(warm_from)) if warm_from else None


def test_previous_trials_seed_the_chief_without_counting_against_max_trials(tmp_path):
    from trainer.tuning.oracle_step import build_result

    runs = tmp_path / "runs"
    previous = _previous_run(runs / "run-1", _settings(runs / "run-1"), [
        {"trial_id": "0", "hyperparameters": {"x": 0.5}, "objective": 0.1},
        {"trial_id": "1", "hyperparameters": {"x": 0.9}, "objective": 0.3},
        {"trial_id": "2", "hyperparameters": {"x": 7.0}, "objective": 0.2},  # outside today's space
    ])
    settings = _settings(runs / "run-2")
    oracle, record = _chief(settings, previous)
    assert record == {"from": "run-1", "trials": 2, "left_out": 1,
                      "note": "warm start from run run-1: 2 trials (1 outside the new space left out)"}
    assert oracle.seeded == ["w00", "w01"] and oracle.max_trials == 4 + 2
    assert [oracle.trials[t].score for t in oracle.seeded] == [0.1, 0.3]
    assert all(oracle.trials[t].status == "COMPLETED" for t in oracle.seeded)
    handed = [oracle.create_trial(f"t{i}") for i in range(5)]
    assert sum(t.status == "RUNNING" for t in handed) == 4, "max_trials of this run's own trials"
    assert not {t.trial_id for t in handed} & set(oracle.seeded)

    result = build_result(oracle, settings)
    assert result["warm_start"]["trials"] == 2
    assert not {t["trial_id"] for t in result["trials"] + result["incomplete"]} & set(oracle.seeded)

    restarted, kept = _chief(settings)  # a restarted chief keeps its seeds and its cap
    assert kept == record and restarted.seeded == oracle.seeded and restarted.max_trials == 6


def test_an_incompatible_previous_run_seeds_nothing_and_says_why(tmp_path):
    runs = tmp_path / "runs"
    previous = _previous_run(runs / "run-1", _settings(runs / "run-1", epochs=5), [
        {"trial_id": "0", "hyperparameters": {"x": 0.5}, "objective": 0.1}])
    oracle, record = _chief(_settings(runs / "run-2"), previous)
    assert record["trials"] == 0 and oracle.seeded == [] and oracle.max_trials == 4
    assert record["note"] == "no warm start: run run-1: epochs differs: 5 then, 2 now"


# -- a user model: its space is what it declares, compared on the chief (issue 27) -----------------

CLASSIFIER = "tune_serve_models.classifier:build"


def _declared(units_max=64, log_lr=True):
    import keras_tuner as kt

    hps = kt.HyperParameters()
    hps.Int("units", 8, units_max, step=8)
    hps.Float("learning_rate", 1e-4, 1e-1, sampling="log" if log_lr else "linear")
    hps.Boolean("batch_norm")
    return hps


def _user_settings(run_root, max_trials=3):
    from tune_contract.steps import SearchArgs

    from trainer.tuning.settings import from_args

    return from_args(SearchArgs(run_root=str(run_root), algorithm="random", objective="val_auc", direction="max",
                                max_trials=max_trials, epochs=2, seed=0, model=CLASSIFIER, early_stopping="off"))


def _user_chief(settings, hps, warm_from=None):
    """A chief over a user model's declared space, as oracle_step makes it (space recorded)."""
    from trainer.tuning import warm_start
    from trainer.tuning.distributed.oracles import make_oracle

    oracle = make_oracle(settings, lease_seconds=30.0, hyperparameters=hps)
    oracle._set_project_dir(settings.args.run_root, "tuning")
    oracle.save()
    warm_start.record_space(oracle, settings)
    return oracle, warm_start.seed(oracle, settings, str(warm_from)) if warm_from else None


def _previous_user_run(root, hps, trials, record_space=True):
    settings = _user_settings(root)
    _user_chief(settings, hps)
    if not record_space:  # a run made before the space was recorded
        (root / "tuning" / "space.json").unlink()
    (root / "tuning" / "search.json").write_text(json.dumps(settings.identity()))
    (root / "tuning" / "oracle_result.json").write_text(json.dumps({"trials": trials, "completed": len(trials)}))
    return root


USER_TRIALS = [
    {"trial_id": "0", "hyperparameters": {"units": 16, "learning_rate": 0.01, "batch_norm": True}, "objective": 0.8},
    {"trial_id": "1", "hyperparameters": {"units": 64, "learning_rate": 0.001, "batch_norm": False}, "objective": 0.7},
]


def test_a_user_model_s_previous_trials_seed_its_next_search(tmp_path):
    runs = tmp_path / "runs"
    previous = _previous_user_run(runs / "run-1", _declared(), USER_TRIALS)
    oracle, record = _user_chief(_user_settings(runs / "run-2"), _declared(units_max=32), previous)
    assert record["note"] == "warm start from run run-1: 1 trials (1 outside the new space left out)"
    assert oracle.seeded == ["w00"] and oracle.trials["w00"].hyperparameters.values["units"] == 16


def test_a_user_model_s_changed_space_or_an_old_run_seeds_nothing_and_says_why(tmp_path):
    runs = tmp_path / "runs"
    old = _previous_user_run(runs / "run-old", _declared(), USER_TRIALS, record_space=False)
    oracle, record = _user_chief(_user_settings(runs / "run-a"), _declared(), old)
    assert record["note"] == "no warm start: run run-old records no search space (made before it was recorded)"
    assert oracle.seeded == []

    linear = _previous_user_run(runs / "run-linear", _declared(log_lr=False), USER_TRIALS)
    oracle, record = _user_chief(_user_settings(runs / "run-b"), _declared(), linear)
    assert record["note"] == ("no warm start: run run-linear: search_space.learning_rate differs: "
                              "a linear float then, a log float now")
    assert oracle.seeded == [] and oracle.max_trials == 3


@pytest.mark.parametrize("damage", ["search.json", "space.json", "oracle_result.json"])
def test_unreadable_previous_files_never_stop_the_chief(tmp_path, damage):
    runs = tmp_path / "runs"
    previous = _previous_user_run(runs / "run-1", _declared(), USER_TRIALS)
    (previous / "tuning" / damage).write_text("{not json" if damage != "oracle_result.json" else '{"trials": 7}')
    oracle, record = _user_chief(_user_settings(runs / "run-2"), _declared(), previous)
    assert record["trials"] == 0 and oracle.seeded == [] and oracle.max_trials == 3
    assert record["note"].startswith("no warm start: run run-1")
