from tune_serve.summaries import build, failed_steps


def test_a_lost_tuner_is_tolerated_but_a_failed_deploy_is_not():
    states = {"validate_params": "success", "tuning.tune_0": "failed", "tuning.tune_1": "success",
              "serving.select_model": "success", "serving.deploy_serving": "failed", "summarize": "running"}
    assert failed_steps(states) == ["serving.deploy_serving"]
    assert failed_steps({**states, "serving.deploy_serving": "success"}) == []


def test_nothing_blessed_is_not_a_failure():
    states = {"serving.select_model": "skipped", "serving.deploy_serving": "skipped"}
    summary = build({"run_id": "r", "model_name": "m"}, [], [None], None, states)
    assert summary["failed_steps"] == [] and summary["deployed"] is None


def test_an_evaluation_failure_fails_the_run_and_lost_tuners_are_listed():
    states = {"evaluation.evaluate_1": "failed", "serving.select_model": "upstream_failed", "tuning.tune_2": "failed"}
    summary = build({"run_id": "r", "model_name": "m"}, [], [], None, states)
    assert summary["failed_steps"] == ["evaluation.evaluate_1", "serving.select_model"]
    assert summary["lost_tuner_tasks"] == ["tuning.tune_2"]


def test_a_run_that_deploys_nothing_says_why_for_each_candidate():
    states = {"serving.select_model": "skipped", "serving.deploy_serving": "skipped"}
    evaluations = [{"rank": 0, "blessed": False, "reasons": ["+0.3 mean_absolute_error worse than serving"],
                    "failed_thresholds": [], "overall": {"mae": 1.3}},
                   {"rank": 1, "blessed": False, "failed_thresholds": [], "overall": {"mae": 1.5}}]  # no reason given
    summary = build({"run_id": "r", "model_name": "m"}, [], evaluations, None, states)
    assert summary["outcome"].startswith("nothing deployed: ")
    assert "rank 0: +0.3 mean_absolute_error worse than serving" in summary["outcome"]
    assert "rank 1: " in summary["outcome"]
    assert "\n" not in summary["outcome"]
    assert all(e["reasons"] for e in summary["evaluations"])


def test_a_deploying_run_names_the_version_in_its_outcome():
    deployed = {"model_name": "m", "version": 3, "candidate_rank": 1}
    summary = build({"run_id": "r", "model_name": "m"}, [], [{"rank": 1, "blessed": True, "reasons": ["ok"]}],
                    deployed, {})
    assert summary["outcome"] == "deployed version 3 of m (candidate rank 1)"
