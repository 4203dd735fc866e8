"""Issue 25: the `gp` algorithm's model of the search, on the plain oracle (no chief): trials
stopped early by the pruning rule enter the GP as censored results, not as if their early
score were final; four tuners asking on the same results fit the GP once."""
from __future__ import annotations

import types

import numpy as np


def _oracle(tmp_path, pruned=(), rule="median", max_trials=30):
    import keras_tuner as kt
    from trainer.tuning.algorithms.gp_oracle import GPOracle

    hp = kt.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = GPOracle(objective=kt.Objective("value", "min"), max_trials=max_trials, hyperparameters=hp, seed=3,
                      tune_new_entries=False)
    oracle._set_project_dir(str(tmp_path), "tuning")
    oracle.pruning = types.SimpleNamespace(pruned={t: "median rule" for t in pruned}, rule=rule)
    return oracle


def _complete(oracle, tuner, value):
    trial = oracle.create_trial(tuner)
    oracle.update_trial(trial.trial_id, {"value": value(trial.hyperparameters.values["x"])})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    return trial


def test_a_pruned_trial_enters_the_fit_as_no_better_than_the_complete_median(tmp_path):
    from trainer.tuning.algorithms.gp_oracle import GPOracle

    oracle = _oracle(tmp_path)
    X = np.linspace(0, 1, 8).reshape(-1, 1)
    z = np.array([1.0, 0.5, 0.0, -0.5, -1.0, -0.5, 0.0, 40.0])  # the last one pruned: an early, far-off score
    censored = np.arange(8) == 7
    out = GPOracle._uncensor(oracle, X, z, censored)
    assert np.array_equal(out[:7], z[:7])  # complete results are kept as they are
    median = np.median(z[:7])
    assert median <= out[7] < 5.0, out  # at least the median of the complete ones, not its early score

    oracle.pruning.rule = "asha"  # ASHA's claim is weaker: not in the best third
    assert np.quantile(z[:7], 1 / 3) <= GPOracle._uncensor(oracle, X, z, censored)[7] < 5.0


def test_pruned_trials_are_read_from_the_search_pruning_state(tmp_path):
    oracle = _oracle(tmp_path)
    trials = [_complete(oracle, f"t{i}", lambda x: (x - 0.3) ** 2) for i in range(5)]
    assert oracle._pruned_ids() == set()
    oracle.pruning.pruned[trials[1].trial_id] = "median rule"
    assert oracle._pruned_ids() == {trials[1].trial_id}
    del oracle.pruning  # the plain oracle (a worker's copy, a test) has no pruning state
    assert oracle._pruned_ids() == set()


def test_a_pruned_early_score_does_not_warp_the_complete_results(tmp_path):
    """Before issue 25 a pruned trial's early score (here 1e6, a diverging first epoch) went into
    the Yeo-Johnson warp as a result: the complete ones were squashed together and the GP lost
    the minimum. With it censored the search still closes in on the optimum at 0.3."""
    oracle = _oracle(tmp_path)
    first = _complete(oracle, "t0", lambda x: 1e6)
    oracle.pruning.pruned[first.trial_id] = "median rule"
    for i in range(11):
        _complete(oracle, f"t{i + 1}", lambda x: (x - 0.3) ** 2)
    late = [abs(t.hyperparameters.values["x"] - 0.3) for t in list(oracle.trials.values())[-4:]]
    assert min(late) < 0.02, late


def test_tuners_asking_on_the_same_results_fit_once(tmp_path, monkeypatch):
    from sklearn.gaussian_process import GaussianProcessRegressor

    oracle = _oracle(tmp_path)
    for i in range(6):
        _complete(oracle, f"t{i}", lambda x: (x - 0.7) ** 2)
    fits = []
    real_fit = GaussianProcessRegressor.fit

    def counting_fit(self, X, y):
        if self.optimizer is not None:
            fits.append(len(X))
        return real_fit(self, X, y)

    monkeypatch.setattr(GaussianProcessRegressor, "fit", counting_fit)
    running = [oracle.create_trial(f"t{i}") for i in range(4)]  # four tuners, no result in between
    assert all(t.status == "RUNNING" for t in running)
    assert fits == [6], fits  # one maximum-likelihood fit on the six results, reused three times
