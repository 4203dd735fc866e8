"""The `tpe` algorithm (trainer.tuning.algorithms.optuna_oracle) and the run seed's independence.

In-process through the chief's own leased oracle (`make_oracle`), and once through a real chief
with three tuner processes. Values are checked against the space they were drawn from; a
restart is a second oracle reloading the first one's directory, as a restarted chief does.
"""
from __future__ import annotations

import math

import pytest
from tuning_helpers import Search, chief_oracle, finished_by_workers


def _settings(tmp_path, algorithm="tpe", function="branin", max_trials=12, seed=0, space=None):
    from tune_contract.steps import SearchArgs

    from trainer.tuning.settings import from_args

    return from_args(SearchArgs(run_root=str(tmp_path), algorithm=algorithm, objective_function=function,
                                objective="value", search_space=space, max_trials=max_trials, epochs=1, seed=seed,
                                early_stopping="off"))


def _chief_oracle(tmp_path, **kwargs):
    """The chief's oracle over tmp_path; reloads what is there, as a restarted chief does."""
    return chief_oracle(_settings(tmp_path, **kwargs))


def _complete(oracle, tuner_id, trial, value):
    oracle.update_trial_from(tuner_id, trial.trial_id, {"value": value})
    trial.status = "COMPLETED"
    oracle.end_trial_from(tuner_id, trial)


def _branin(trial) -> float:
    from trainer.tuning.algorithms import benchmarks

    return benchmarks.evaluate("branin", trial.hyperparameters.values, 0)


def _run(oracle, completions: int, running: dict | None = None) -> dict:
    """Four tuners, the lowest-numbered running trial ends first; stops after `completions` ends.
    Returns the trials still running, by tuner."""
    running = dict(running or {})
    for tuner in (f"t{i}" for i in range(4)):
        if tuner not in running:
            trial = oracle.create_trial(tuner)
            if trial.status == "RUNNING":
                running[tuner] = trial
    for _ in range(completions):
        tuner = min(running, key=lambda t: running[t].trial_id)
        trial = running.pop(tuner)
        _complete(oracle, tuner, trial, _branin(trial))
        following = oracle.create_trial(tuner)
        if following.status == "RUNNING":
            running[tuner] = following
    return running


def _points(oracle) -> dict:
    return {i: dict(t.hyperparameters.values) for i, t in sorted(oracle.trials.items())}


# -- hyperparameter kinds -------------------------------------------------------------------------


def test_every_hyperparameter_kind_including_conditional_ones(tmp_path):
    import keras_tuner as kt
    from trainer.tuning.algorithms.optuna_oracle import TPEOracle

    hp = kt.HyperParameters()
    hp.Int("layers", 1, 4)
    hp.Int("units", 16, 128, step=16)
    hp.Int("width", 2, 256, sampling="log")
    hp.Int("filters", 4, 64, step=2, sampling="log")  # 4, 8, 16, 32, 64
    hp.Float("dropout", 0.0, 0.5)
    hp.Float("rate", 1e-4, 1e-1, sampling="log")
    hp.Float("momentum", 0.5, 0.9, step=0.1)
    hp.Float("decay", 0.1, 0.5, sampling="reverse_log")
    hp.Choice("batch", [32, 64, 128])  # numeric: ordered
    hp.Choice("activation", ["relu", "tanh"])
    hp.Boolean("batch_norm")
    hp.Fixed("seed_like", 7)
    hp.Choice("kind", ["dense", "conv"])
    with hp.conditional_scope("kind", ["dense"]):
        hp.Int("dense_units", 8, 64)
    with hp.conditional_scope("kind", ["conv"]):
        hp.Float("kernel_scale", 0.5, 2.0)
    objective = kt.Objective("value", "min")
    assert TPEOracle(objective=objective, hyperparameters=hp).n_startup == 2 * 14 + 1  # all but the Fixed one
    oracle = TPEOracle(objective=objective, max_trials=30, hyperparameters=hp, seed=5, tune_new_entries=False,
                       n_startup=8)  # 8 Sobol points, then TPE on the conditional space
    oracle._set_project_dir(str(tmp_path), "tuning")

    kinds = set()
    for i in range(30):
        trial = oracle.create_trial(f"t{i % 4}")
        v = trial.hyperparameters.values
        assert isinstance(v["layers"], int) and 1 <= v["layers"] <= 4
        assert v["units"] in range(16, 129, 16)
        assert isinstance(v["width"], int) and 2 <= v["width"] <= 256
        assert v["filters"] in (4, 8, 16, 32, 64)
        assert 0.0 <= v["dropout"] <= 0.5 and 1e-4 <= v["rate"] <= 1e-1 and 0.1 <= v["decay"] <= 0.5
        assert any(math.isclose(v["momentum"], m) for m in (0.5, 0.6, 0.7, 0.8, 0.9))
        assert v["batch"] in (32, 64, 128) and v["activation"] in ("relu", "tanh")
        assert v["batch_norm"] in (True, False) and v["seed_like"] == 7
        if v["kind"] == "dense":  # only the active branch's hyperparameter is given
            assert 8 <= v["dense_units"] <= 64 and "kernel_scale" not in v
        else:
            assert 0.5 <= v["kernel_scale"] <= 2.0 and "dense_units" not in v
        kinds.add(v["kind"])
        score = v["dropout"] + (v["kernel_scale"] if v["kind"] == "conv" else 0.0)
        oracle.update_trial(trial.trial_id, {"value": score})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert kinds == {"dense", "conv"}
    # every trial made it into the study: the Sobol start and TPE after it
    study = oracle._study
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 30


def test_declarative_space_through_the_chief_oracle(tmp_path):
    from trainer.tuning import search_space as ss

    from tune_contract.search_space import DEFAULT_SPACE

    space = list(DEFAULT_SPACE)  # int, stepped int, stepped float, log float, choice
    oracle = _chief_oracle(tmp_path, function=None, space=space, max_trials=14)
    running = {}
    for i in range(14):
        tuner = f"t{i % 3}"
        if tuner in running:
            _complete(oracle, tuner, running.pop(tuner), float(i))
        trial = oracle.create_trial(tuner)
        assert ss.validate(space).violation(ss.user_values(trial.hyperparameters.values)) is None
        running[tuner] = trial
    assert len(oracle.trials) == 14


# -- restart, determinism ----------------------------------------------------------------------------


def test_restarted_chief_rebuilds_the_study_and_continues(tmp_path):
    uninterrupted = _chief_oracle(tmp_path / "a", seed=3)
    _run(uninterrupted, completions=12)

    first = _chief_oracle(tmp_path / "b", seed=3)
    running = _run(first, completions=6)
    held = {t: trial.trial_id for t, trial in running.items()}
    del first  # the chief dies; its trials and state are on storage

    restarted = _chief_oracle(tmp_path / "b", seed=3)
    assert {t: trial.trial_id for t, trial in restarted.ongoing_trials.items()} == held
    study = restarted._sync()
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE"] * 6 + ["RUNNING"] * len(held)  # nothing lost, running ones are liars again
    _run(restarted, completions=6, running=restarted.ongoing_trials)

    ids = list(restarted.trials)
    assert len(ids) == len(set(ids)) == 12
    assert [t.status for t in restarted.trials.values()] == ["COMPLETED"] * 12
    # the suggestions after the restart are those an uninterrupted chief makes
    assert _points(restarted) == _points(uninterrupted)


def test_same_seed_same_search_other_seed_another(tmp_path):
    searches = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        oracle = _chief_oracle(tmp_path / name, seed=seed)
        _run(oracle, completions=12)
        searches[name] = _points(oracle)
    assert searches["a"] == searches["b"]
    shared = {round(v, 9) for p in searches["a"].values() for v in p.values()} & \
             {round(v, 9) for p in searches["c"].values() for v in p.values()}
    assert not shared


@pytest.mark.parametrize("algorithm", ["random", "tpe"])
def test_nearby_seeds_draw_unrelated_points(tmp_path, algorithm):
    """Keras Tuner stepped its seed by one per value drawn, and the chief passed it the run seed
    (+1): seeds 1 and 2 replayed the same random numbers one value apart."""
    def probabilities(seed):
        oracle = _chief_oracle(tmp_path / f"{algorithm}-{seed}", algorithm=algorithm, seed=seed, max_trials=6)
        hps = {hp.name: hp for hp in oracle.hyperparameters.space}
        probs = set()
        for i in range(6):  # the values as Keras Tuner's random numbers in [0, 1)
            values = oracle.create_trial(f"t{i}").hyperparameters.values
            probs |= {round(hps[name].value_to_prob(v), 9) for name, v in values.items()}
        return probs

    assert not probabilities(1) & probabilities(2)


# -- through the real chief --------------------------------------------------------------------------


def test_distributed_tpe_search_on_branin(tmp_path):
    """Three tuners share one TPE search. They start before the chief, as pods may, and wait
    for it: each trial takes 2 s, so one tuner alone would need 18 s for all nine, while the
    others join within the reconnect backoff's cap (5 s) of the chief listening."""
    search = Search(tmp_path, tmp_path / "runs" / "r1", "--algorithm", "tpe", "--objective-function", "branin",
                    "--max-trials", "9", "--epochs", "1", "--seed", "4")
    oracle, tuned = search.run(("--lease-seconds", "60"), 3, ("--heartbeat-seconds", "0.5", "--sleep-seconds", "2"),
                               tuners_first=True)
    ids = [t["trial_id"] for t in oracle["trials"]]
    assert len(ids) == len(set(ids)) == oracle["completed"] == 9 and oracle["incomplete"] == []
    by_worker = finished_by_workers(*tuned)
    assert sorted(by_worker) == sorted(ids) and all(len(w) == 1 for w in by_worker.values())
    for trial in oracle["trials"]:
        x1, x2 = trial["hyperparameters"]["x1"], trial["hyperparameters"]["x2"]
        assert -5 <= x1 <= 10 and 0 <= x2 <= 15
        b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
        assert math.isclose(trial["objective"], (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10)
    assert len({w["tuner_id"] for w in tuned if w["trials"]}) >= 2, "the trials were shared out"


def test_tuners_reconnect_to_a_late_chief_within_seconds(monkeypatch):
    """gRPC's default reconnect backoff grows to 120 s: a tuner started before its chief could
    sit idle for two minutes after the chief came up."""
    import grpc
    from trainer.tuning.distributed import rpc

    seen = {}
    real = grpc.insecure_channel
    monkeypatch.setattr(grpc, "insecure_channel", lambda address, options=(): seen.update(options) or
                        real(address, options=options))
    client = rpc.LeasedOracleClient(None, "127.0.0.1:1", "tuner-0", wait_seconds=1, poll_seconds=1,
                                    search_done=lambda: False, secret="s" * 32)
    client.close()
    assert seen["grpc.max_reconnect_backoff_ms"] <= 5000
