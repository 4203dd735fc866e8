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


def _settings(run_root, algorithm="bayesian", max_trials=4):
    from trainer.tuning import benchmarks, search_space
    from trainer.tuning.settings import Settings

    return Settings(run_root=str(run_root), algorithm=algorithm, objective="value", direction="min",
                    space=search_space.validate(benchmarks.default_space("sleep")), max_trials=max_trials,
                    executions_per_trial=1, epochs=2, seed=0, function="sleep")


def _previous_run(root, settings, trials):
    tuning = root / "tuning"
    tuning.mkdir(parents=True)
    (tuning / "search.json").write_text(json.dumps(settings.identity()))
    (tuning / "oracle_result.json").write_text(json.dumps({"trials": trials, "completed": len(trials)}))
    return root


def _chief(settings, warm_from=None):
    from trainer.tuning import warm_start
    from trainer.tuning.oracles import make_oracle

    oracle = make_oracle(settings, lease_seconds=30.0)
    oracle._set_project_dir(settings.run_root, "tuning")
    if (settings.run_root and (__import__("pathlib").Path(settings.run_root) / "tuning" / "oracle.json").exists()):
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
    previous = _previous_run(runs / "run-1", _settings(runs / "run-1", max_trials=3).__class__(
        **{**_settings(runs / "run-1").__dict__, "epochs": 5}), [
        {"trial_id": "0", "hyperparameters": {"x": 0.5}, "objective": 0.1}])
    oracle, record = _chief(_settings(runs / "run-2"), previous)
    assert record["trials"] == 0 and oracle.seeded == [] and oracle.max_trials == 4
    assert record["note"] == "no warm start: run run-1: epochs differs: 5 then, 2 now"
