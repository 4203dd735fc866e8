import pytest

from tune_serve.workflow.leaderboard import NoCandidate, merge_trials, select_blessed, top_n


def trial(tid, objective, tuner="tuner-0"):
    return {"trial_id": tid, "objective": objective, "hyperparameters": {"units": int(tid)}, "tuner_id": tuner}


def test_merge_keeps_one_record_per_trial_and_the_chiefs_for_lost_tuners():
    tuners = [{"tuner_id": "tuner-0", "trials": [trial("1", 3.0), trial("2", float("nan"))]}, None]
    oracle = {"trials": [trial("1", 3.0), trial("3", 1.0, "tuner-1")]}  # tuner-1 was lost after trial 3
    merged = {t["trial_id"]: t for t in merge_trials(tuners, oracle)}
    assert set(merged) == {"1", "3"}          # the diverged trial (NaN) is not a candidate
    assert merged["3"]["tuner_id"] == "tuner-1"


def test_top_n_ranks_by_direction_with_stable_ties():
    trials = [trial("1", 2.0), trial("2", 1.0), trial("3", 2.0), trial("4", 5.0)]
    assert [t["trial_id"] for t in top_n(trials, 3, "min")] == ["2", "1", "3"]
    assert [t["rank"] for t in top_n(trials, 3, "min")] == [0, 1, 2]
    assert [t["trial_id"] for t in top_n(trials, 2, "max")] == ["4", "1"]
    assert len(top_n(trials, 10, "min")) == 4
    with pytest.raises(NoCandidate):
        top_n([], 2, "min")


def test_select_blessed_prefers_lowest_mae_and_refuses_when_none_blessed():
    evals = [{"rank": 0, "blessed": True, "overall": {"mae": 0.5}},
             {"rank": 1, "blessed": True, "overall": {"mae": 0.4}},
             {"rank": 2, "blessed": False, "overall": {"mae": 0.1},
              "failed_thresholds": [{"metric": "mean_absolute_error", "value": 0.1, "threshold": "..."}]}]
    assert select_blessed(evals)["rank"] == 1
    with pytest.raises(NoCandidate, match="no candidate was blessed.*rank 2: mean_absolute_error 0.1"):
        select_blessed([evals[2]])


def test_top_n_trains_each_hyperparameter_set_once():
    same = {"units": 8}
    trials = [{"trial_id": "a", "objective": 2.0, "hyperparameters": same},
              {"trial_id": "b", "objective": 1.0, "hyperparameters": dict(same)},  # Hyperband's next round
              {"trial_id": "c", "objective": 3.0, "hyperparameters": {"units": 16}}]
    assert [t["trial_id"] for t in top_n(trials, 2, "min")] == ["b", "c"]


def test_select_blessed_names_each_candidates_reasons():
    evals = [{"rank": 0, "blessed": False, "reasons": ["worse than the model serving"], "overall": {"mae": 1.0}},
             {"rank": 1, "blessed": False, "failed_thresholds": [], "overall": {"mae": 2.0}}]
    with pytest.raises(NoCandidate) as refused:
        select_blessed(evals)
    message = str(refused.value)
    assert "rank 0: worse than the model serving" in message and "rank 1: " in message
    assert "rank 1: ;" not in message and not message.endswith(": ")
