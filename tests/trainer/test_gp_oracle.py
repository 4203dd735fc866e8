"""The `gp` algorithm (trainer.tuning.algorithms.gp_oracle), in-process through the chief's own leased
oracle (`make_oracle`) and once through a real chief with two tuner processes. The helpers are
the TPE tests' (same four simulated tuners, same restart by reloading the directory)."""
from __future__ import annotations

import math

from test_tpe_oracle import _branin, _chief_oracle, _complete, _points, _run
from tuning_helpers import Search, finished_by_workers


def test_every_hyperparameter_kind_including_conditional_ones(tmp_path):
    import keras_tuner as kt
    from trainer.tuning.algorithms.gp_oracle import START_POINTS, GPOracle

    hp = kt.HyperParameters()
    hp.Int("units", 16, 128, step=16)
    hp.Float("rate", 1e-4, 1e-1, sampling="log")
    hp.Float("momentum", 0.5, 0.9, step=0.1)
    hp.Choice("activation", ["relu", "tanh"])
    hp.Boolean("batch_norm")
    hp.Fixed("seed_like", 7)
    hp.Choice("kind", ["dense", "conv"])
    with hp.conditional_scope("kind", ["dense"]):
        hp.Int("dense_units", 8, 64)
    with hp.conditional_scope("kind", ["conv"]):
        hp.Float("kernel_scale", 0.5, 2.0)
    oracle = GPOracle(objective=kt.Objective("value", "max"), max_trials=16, hyperparameters=hp, seed=5,
                      tune_new_entries=False)
    oracle._set_project_dir(str(tmp_path), "tuning")
    kinds, rates = set(), []
    for i in range(16):
        trial = oracle.create_trial(f"t{i % 2}")
        v = trial.hyperparameters.values
        assert v["units"] in range(16, 129, 16) and 1e-4 <= v["rate"] <= 1e-1
        assert any(math.isclose(v["momentum"], m) for m in (0.5, 0.6, 0.7, 0.8, 0.9))
        assert v["activation"] in ("relu", "tanh") and v["batch_norm"] in (True, False) and v["seed_like"] == 7
        if v["kind"] == "dense":  # only the active branch's hyperparameter is given
            assert 8 <= v["dense_units"] <= 64 and "kernel_scale" not in v
        else:
            assert 0.5 <= v["kernel_scale"] <= 2.0 and "dense_units" not in v
        kinds.add(v["kind"])
        rates.append(v["rate"])
        oracle.update_trial(trial.trial_id, {"value": -abs(math.log10(v["rate"]) + 2.0)})  # best at 1e-2
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert kinds == {"dense", "conv"}
    # direction max, after the Sobol start: the GP moves the rate towards 1e-2
    late = sorted(abs(math.log10(r) + 2.0) for r in rates[START_POINTS + 4:])
    assert late[len(late) // 2] < 0.5, rates


def test_tuners_asking_at_once_get_different_points(tmp_path):
    oracle = _chief_oracle(tmp_path, algorithm="gp", seed=2, max_trials=20)
    running = _run(oracle, completions=8)  # four tuners, so the GP suggests with three trials running
    points = {(t.hyperparameters.values["x1"], t.hyperparameters.values["x2"]) for t in running.values()}
    assert len(running) == len(points) == 4, points


def test_restarted_chief_suggests_what_an_uninterrupted_one_would(tmp_path):
    uninterrupted = _chief_oracle(tmp_path / "a", algorithm="gp", seed=3)
    _run(uninterrupted, completions=12)

    first = _chief_oracle(tmp_path / "b", algorithm="gp", seed=3)
    running = _run(first, completions=6)
    held = {t: trial.trial_id for t, trial in running.items()}
    del first  # the chief dies; its trials are on storage

    restarted = _chief_oracle(tmp_path / "b", algorithm="gp", seed=3)
    assert {t: trial.trial_id for t, trial in restarted.ongoing_trials.items()} == held
    _run(restarted, completions=6, running=restarted.ongoing_trials)
    assert [t.status for t in restarted.trials.values()] == ["COMPLETED"] * 12
    assert _points(restarted) == _points(uninterrupted)


def test_same_seed_same_search_other_seed_another(tmp_path):
    searches = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        oracle = _chief_oracle(tmp_path / name, algorithm="gp", seed=seed)
        _run(oracle, completions=10)
        searches[name] = _points(oracle)
    assert searches["a"] == searches["b"] and searches["a"] != searches["c"]


def test_a_failed_trial_is_left_out_of_the_fit(tmp_path):
    oracle = _chief_oracle(tmp_path, algorithm="gp", seed=4, max_trials=10)
    trials = {f"t{i}": oracle.create_trial(f"t{i}") for i in range(4)}
    for tuner in ("t0", "t1", "t2"):
        _complete(oracle, tuner, trials[tuner], _branin(trials[tuner]))
    trials["t3"].status = "FAILED"  # e.g. a diverged trial: no score
    oracle.end_trial_from("t3", trials["t3"])
    assert len(oracle._completed()) == 3
    assert oracle.create_trial("t3").status == "RUNNING"  # the GP fits the three results


def test_distributed_gp_search_on_branin(tmp_path):
    search = Search(tmp_path, tmp_path / "runs" / "r1", "--algorithm", "gp", "--objective-function", "branin",
                    "--max-trials", "8", "--epochs", "1", "--seed", "4")
    oracle, tuned = search.run(("--lease-seconds", "60"), 2, ("--heartbeat-seconds", "0.5", "--sleep-seconds", "1"),
                               tuners_first=True)
    ids = [t["trial_id"] for t in oracle["trials"]]
    assert len(ids) == len(set(ids)) == oracle["completed"] == 8 and oracle["incomplete"] == []
    assert sorted(finished_by_workers(*tuned)) == sorted(ids)
    assert oracle["early_stopping"].startswith("median")  # auto: on for a model-based search
    for trial in oracle["trials"]:
        assert -5 <= trial["hyperparameters"]["x1"] <= 10 and 0 <= trial["hyperparameters"]["x2"] <= 15


def test_a_long_search_fits_at_most_max_fit_results_the_best_among_them(tmp_path, monkeypatch):
    """A GP fit costs the cube of its points; max_trials goes to 10,000."""
    import keras_tuner as kt
    import numpy as np
    import sklearn.gaussian_process
    from keras_tuner.src.engine import trial as trial_module
    from trainer.tuning.algorithms.gp_oracle import MAX_FIT, GPOracle

    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = GPOracle(objective=kt.Objective("value", "min"), max_trials=400, hyperparameters=hp, seed=1,
                      tune_new_entries=False)
    for i in range(300):  # completed trials with scores i: the best are the lowest ids
        trial = trial_module.Trial(oracle.get_space(), trial_id=f"{i:03d}", status="COMPLETED")
        trial.hyperparameters.values["x"] = i / 300
        trial.score = float(i)
        oracle.trials[trial.trial_id] = trial
    fitted = []
    real_fit = sklearn.gaussian_process.GaussianProcessRegressor.fit
    monkeypatch.setattr(sklearn.gaussian_process.GaussianProcessRegressor, "fit",
                        lambda self, X, y: fitted.append(np.array(X)) or real_fit(self, X, y))
    oracle._suggest(oracle._completed(), np.random.default_rng(0))
    assert len(fitted[0]) == MAX_FIT
    xs = sorted(round(float(x) * 300) for x in fitted[0][:, 0])
    assert xs[:MAX_FIT // 2] == list(range(MAX_FIT // 2))  # the best half, and a sample of the rest


def test_a_point_on_a_log_bound_decodes_inside_the_space():
    """Seen in `make demo MODEL=classifier` run twice: the gp suggested the upper corner of a log
    range, exp(log(0.03)) is 0.030000000000000002, and the chief refused the tuner's report of it
    ("learning_rate=0.030000000000000002 is outside [0.0001, 0.03]"), failing the tuner."""
    import keras_tuner as kt
    import numpy as np
    from trainer.tuning.algorithms.gp_oracle import GPOracle
    from trainer.tuning.search_space import hyperparameters_violation

    hp = kt.HyperParameters()
    hp.Float("learning_rate", 1e-4, 0.03, sampling="log")
    hp.Float("dropout", 0.0, 0.5)
    hp.Int("units", 8, 512, sampling="log")
    oracle = GPOracle(objective=kt.Objective("value", "max"), max_trials=4, hyperparameters=hp, seed=0)
    for corner in (np.ones(3), np.zeros(3)):
        values = oracle._decode(corner)
        assert hyperparameters_violation(hp, values) is None, values
