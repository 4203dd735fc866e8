from tune_serve.workflow.summaries import build, failed_steps


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
    assert "rank 0 not blessed: +0.3 mean_absolute_error worse than serving" in summary["outcome"]
    assert "rank 1 not blessed: " in summary["outcome"]
    assert "\n" not in summary["outcome"]
    assert all(e["reasons"] for e in summary["evaluations"])


def test_a_deploying_run_names_the_version_in_its_outcome():
    deployed = {"model_name": "m", "version": 3, "candidate_rank": 1}
    summary = build({"run_id": "r", "model_name": "m"}, [], [{"rank": 1, "blessed": True, "reasons": ["ok"]}],
                    deployed, {})
    assert summary["outcome"] == "deployed m v3 (candidate 1)"
    deployed["eval_mae"] = 411.9
    evaluation = {"rank": 1, "blessed": True, "reasons": ["ok"], "baseline": {"overall": {"mae": 420.2}}}
    summary = build({"run_id": "r", "model_name": "m"}, [], [evaluation], deployed, {})
    # the summary's outcome is the run note's line (the full evaluation carries the baseline)
    assert summary["outcome"] == "deployed m v3 (candidate 1, MAE 411.9, was 420.2)"


def test_a_diverged_candidate_is_named_with_its_reason_in_the_outcome_and_run_note():
    from tune_serve.workflow import run_note
    from tune_serve.workflow.plan import evaluation_arguments

    trained = [{"rank": 0, "trial_id": "3", "failed": "diverged: training loss 44,000,000 at epoch 5 is above 10x "
                                                      "its best 1,500,000 for 2 epochs in a row", "epochs": 5},
               {"rank": 1, "trial_id": "7", "model_path": "/m/1"}]
    plan = {"evaluate": {"run_root": "/r"}}
    assert [a[a.index("--rank=1")] for a in evaluation_arguments(plan, trained, None)] == ["--rank=1"]
    evaluations = [{"rank": 1, "blessed": False, "reasons": ["MAE 900 > bound 800"], "overall": {"mae": 900.0}}]
    summary = build({"run_id": "r", "model_name": "m"}, [], evaluations, None, {}, trained=trained)
    assert summary["training_failures"] == [{"rank": 0, "trial_id": "3", "reason": trained[0]["failed"]}]
    assert "rank 0 training failed: diverged: training loss 44,000,000" in summary["outcome"]
    assert summary["outcome"] == run_note.text(summary)
    only_failed = build({"run_id": "r", "model_name": "m"}, [], [], None, {}, trained=trained[:1])
    assert run_note.text(only_failed).startswith("nothing deployed: rank 0 training failed: diverged")


def test_a_stale_verdict_or_a_replaced_retry_says_so_and_ships_nothing():
    """Issue 29: the note said "deployed diamonds v3" for a duplicate and "deployed v4 … first
    version" for the older model put back; now the decision under the deploy lock is the line."""
    blessed = [{"rank": 1, "blessed": True, "reasons": ["ok"]}]
    refused = {"model_name": "m", "action": "refused", "version": None, "candidate_rank": 1,
               "reason": "evaluated against v1; v2 serves now: the verdict is stale, nothing published (clear this "
                         "run's evaluation to judge the candidate against what serves now)"}
    summary = build({"run_id": "r", "model_name": "m"}, [], blessed, refused, {})
    assert summary["deployed"] is None and summary["deploy_refused"]["candidate_rank"] == 1
    assert summary["outcome"] == f"nothing deployed: candidate 1 refused: {refused['reason']}"
    replaced = {"model_name": "m", "action": "already_published", "version": 1, "serving_version": 2,
                "candidate_rank": 0, "reason": "this run's candidate 0 is already v1 (published by an earlier try); "
                                               "v2 serves now: left as it is"}
    summary = build({"run_id": "r", "model_name": "m"}, [], blessed, replaced, {})
    assert summary["outcome"] == f"nothing new deployed: m: {replaced['reason']}"
    serving = {**replaced, "serving_version": 1, "eval_mae": 5.0}
    assert build({"run_id": "r", "model_name": "m"}, [], blessed, serving, {})["outcome"] == \
        "deployed m v1 (candidate 0, MAE 5.0)"  # a retry of the version serving: the line it had
