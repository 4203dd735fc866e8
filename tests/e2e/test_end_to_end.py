"""tune_train_serve through the real scheduler with the local backend, on a small sample."""
from __future__ import annotations

import httpx
import pytest
from conftest import TINY
from helpers import assert_succeeded, intervals_overlap, savedmodel_predict, tree

pytestmark = pytest.mark.e2e


def test_run_succeeds(happy_run):
    client, _, run_id, state = happy_run
    assert_succeeded(client, run_id, state)


def test_search_completes_max_trials_with_parallel_tuners(happy_run):
    client, _, run_id, _ = happy_run
    search = client.xcom(run_id, "tuning.wait_oracle")
    assert search["completed"] == TINY["max_trials"]
    trial_ids = [t["trial_id"] for t in search["trials"]]
    assert len(trial_ids) == len(set(trial_ids)) == TINY["max_trials"]
    tuners = [t for t in client.task_instances(run_id) if t["task_id"] == "tuning.tune"]
    assert sorted(t["map_index"] for t in tuners) == list(range(TINY["num_tuners"]))
    assert intervals_overlap(tuners), "the tuners did not run at the same time"
    reported = [t["trial_id"] for i in range(TINY["num_tuners"])
                for t in client.xcom(run_id, "tuning.tune", i)["trials"]]
    assert sorted(reported) == sorted(trial_ids)  # every trial reported by exactly one tuner


def test_top_n_trained_and_evaluated(happy_run):
    client, _, run_id, _ = happy_run
    top = client.xcom(run_id, "aggregate_top_n")
    assert [e["rank"] for e in top] == list(range(TINY["top_n"]))
    objectives = [e["objective"] for e in top]
    assert objectives == sorted(objectives)
    for rank, entry in enumerate(top):
        trained = client.xcom(run_id, "training.train", rank)
        assert trained["rank"] == rank and trained["hyperparameters"] == entry["hyperparameters"]
        evaluated = client.xcom(run_id, "evaluation.evaluate", rank)
        assert evaluated["model_path"] == trained["model_path"]
        assert evaluated["overall"]["example_count"] > 0 and evaluated["blessed"] is True


def test_served_version_answers_like_the_savedmodel(happy_run):
    client, env, run_id, _ = happy_run
    deployed = client.xcom(run_id, "serving.deploy_serving")
    name, version = deployed["model_name"], deployed["version"]
    evaluations = [client.xcom(run_id, "evaluation.evaluate", rank) for rank in range(TINY["top_n"])]
    best = min((e for e in evaluations if e["blessed"]), key=lambda e: e["overall"]["mae"])
    assert (deployed["candidate_rank"], deployed["source_model"]) == (best["rank"], best["model_path"])
    status = httpx.get(deployed["url"].replace(":predict", ""), timeout=10).json()
    assert {"version": str(version), "state": "AVAILABLE"}.items() <= status["model_version_status"][0].items()
    instance = client.xcom(run_id, "prepare_data")["sample_instance"]
    served = httpx.post(deployed["url"], json={"instances": [instance]}, timeout=30).json()["predictions"]
    own = savedmodel_predict(f"{env['TUNE_SERVE_SERVING_ROOT']}/{name}/{version}", instance)
    assert served[0] == pytest.approx(own, rel=1e-5)


def test_the_readme_prediction_example_works_on_the_served_model(happy_run):
    import json
    import re
    from pathlib import Path

    client, _, run_id, _ = happy_run
    deployed = client.xcom(run_id, "serving.deploy_serving")
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [example] = set(re.findall(r"curl -d '(\{.*?\})'", readme))  # every example asks with the same row
    response = httpx.post(deployed["url"], content=example, timeout=30)  # as curl -d sends it
    assert response.status_code == 200, response.text
    [[prediction]] = response.json()["predictions"]
    assert prediction > 0
    assert "signature_name" not in json.loads(example)


def test_bad_conf_is_refused_at_trigger_and_changes_nothing(stack, happy_run):
    """Rules across fields are checked when the run is triggered (tune_serve.web.trigger_guard): no run
    is created. A run created another way (CLI) meets them in validate_params (tests/chaos)."""
    client, env, _, _ = happy_run
    before = tree(env["TUNE_SERVE_SERVING_ROOT"])
    with pytest.raises(ValueError, match=r"400.*top_n \(5\) must be at most max_trials \(3\)"):
        client.trigger({**TINY, "top_n": 5, "max_trials": 3}, run_id="e2e-bad-conf")
    assert client.http.get("/dags/tune_train_serve/dagRuns/e2e-bad-conf").status_code == 404
    assert tree(env["TUNE_SERVE_SERVING_ROOT"]) == before
    with pytest.raises(ValueError, match="algorithm"):
        client.trigger({**TINY, "algorithm": "annealing"})  # the schema refuses it at trigger time


WIDE_AND_DEEP = "tune_serve_models.wide_and_deep:build"


WIDE_AND_DEEP_CONF = {**TINY, "model": WIDE_AND_DEEP, "sample_rows": 1000, "max_trials": 2, "top_n": 1,
                      "training_epochs": 2, "search_space": [{"name": "bottleneck", "type": "choice", "values": [True]}],
                      "model_name": "diamonds-wide-deep"}


@pytest.fixture(scope="module")
def wide_and_deep_runs(stack):
    """The user model run twice in a row, as a weekly retune does (the second warm-starts)."""
    client, _ = stack
    first = client.trigger(WIDE_AND_DEEP_CONF, run_id="e2e-wide-and-deep")
    states = {first: client.wait(first, timeout=1500)}
    again = client.trigger(WIDE_AND_DEEP_CONF, run_id="e2e-wide-and-deep-again")
    states[again] = client.wait(again, timeout=1500)
    return client, states


def test_a_user_model_from_the_models_folder_runs_to_a_served_prediction(stack, wide_and_deep_runs):
    """The shipped wide-and-deep example through the scheduler: its declared space searched
    with one parameter fixed by search_space (the conditional bottleneck on), trained, evaluated
    and deployed under its own name."""
    _, env = stack
    client, states = wide_and_deep_runs
    run_id = "e2e-wide-and-deep"
    state = states[run_id]
    assert_succeeded(client, run_id, state)

    prepared = client.xcom(run_id, "prepare_data")
    assert prepared["model"]["name"] == WIDE_AND_DEEP and "bottleneck_units" in prepared["model"]["hyperparameters"]
    search = client.xcom(run_id, "tuning.wait_oracle")
    assert search["completed"] == 2
    assert all(t["hyperparameters"]["bottleneck"] is True and "bottleneck_units" in t["hyperparameters"]
               for t in search["trials"])
    trained = client.xcom(run_id, "training.train", 0)
    assert trained["model"] == WIDE_AND_DEEP and trained["hyperparameters"]["bottleneck"] is True

    deployed = client.xcom(run_id, "serving.deploy_serving")
    assert deployed["model_name"] == "diamonds-wide-deep"
    instance = prepared["sample_instance"]
    served = httpx.post(deployed["url"], json={"instances": [instance]}, timeout=30).json()["predictions"]
    own = savedmodel_predict(f"{env['TUNE_SERVE_SERVING_ROOT']}/{deployed['model_name']}/{deployed['version']}",
                             instance)
    assert served[0] == pytest.approx(own, rel=1e-5)


def test_a_user_model_s_second_run_warm_starts_from_its_first(wide_and_deep_runs):
    """Issue 27: every run of a user model after its first failed in validate_params."""
    client, states = wide_and_deep_runs
    run_id = "e2e-wide-and-deep-again"
    assert_succeeded(client, run_id, states[run_id])
    search = client.xcom(run_id, "tuning.wait_oracle")
    assert search["warm_start"]["from"] == "e2e-wide-and-deep" and search["warm_start"]["trials"] >= 1, search
    assert search["completed"] == WIDE_AND_DEEP_CONF["max_trials"]  # the seeded trials do not count
