"""Both classification tasks through the real scheduler, each to a served prediction with class
probabilities: the example classifier on titanic (bundled, binary, the task given) and a CSV whose text label has three
values (multiclass, the task left to prepare: the plan says so, prepare infers it)."""
from __future__ import annotations

import random

import httpx
import pytest
from helpers import assert_succeeded

pytestmark = pytest.mark.e2e

SMALL = {"algorithm": "random", "max_trials": 2, "num_tuners": 1, "tuning_epochs": 2, "top_n": 1,
         "training_epochs": 3, "early_stopping_patience": 2}
RUNS = {
    # the shipped example classifier (the model contract), on the bundled titanic data
    "binary": {**SMALL, "model": "tune_serve_models.classifier:build", "source": "titanic", "sample_rows": 600, "task": "binary", "objective": "val_auc",
               "auc_lower_bound": 0.5, "model_name": "titanic-e2e"},
    # task, objective and direction auto on a user's file: only prepare can tell the task
    "multiclass": {**SMALL, "label": "band", "model_name": "bands-e2e"},
}
CLASSES = {"binary": ["no", "yes"], "multiclass": ["high", "low", "mid"]}
OBJECTIVES = {"binary": {"name": "val_auc", "direction": "max"}, "multiclass": {"name": "val_loss", "direction": "min"}}


def _bands_csv(path) -> str:
    """300 rows: `band` (low/mid/high) from x1 + x2 with some noise, and a colour that does not matter."""
    rng = random.Random(0)
    rows = ["x1,x2,colour,band"]
    for _ in range(300):
        x1, x2 = rng.uniform(0, 10), rng.uniform(0, 10)
        score = x1 + x2 + rng.gauss(0, 1.5)
        band = "low" if score < 8 else "mid" if score < 12 else "high"
        rows.append(f"{x1:.3f},{x2:.3f},{rng.choice(['red', 'green', 'blue'])},{band}")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def classifier_runs(stack, tmp_path_factory):
    client, _ = stack
    RUNS["multiclass"]["source"] = _bands_csv(tmp_path_factory.mktemp("bands") / "bands.csv")
    return client, _run_all(client, RUNS, "")


def _run_all(client, confs: dict, suffix: str) -> dict:
    """Trigger every conf at once; {task: (run id, its final state)}."""
    run_ids = {task: client.trigger(conf, run_id=f"e2e-{task}{suffix}") for task, conf in confs.items()}
    return {task: (run_id, client.wait(run_id, timeout=1500)) for task, run_id in run_ids.items()}


@pytest.mark.parametrize("task", list(RUNS))
def test_a_classifier_runs_to_a_served_prediction_with_class_probabilities(classifier_runs, task):
    client, runs = classifier_runs
    run_id, state = runs[task]
    assert_succeeded(client, run_id, state)

    plan = client.xcom(run_id, "validate_params")
    assert plan["task"] == (task if task == "binary" else "auto (inferred by prepare)")
    assert plan["objective"] == OBJECTIVES[task]
    prepared = client.xcom(run_id, "prepare_data")
    assert prepared["task"] == task and prepared["label_vocabulary"] == CLASSES[task]
    assert prepared["task_reason"] == ("given by the run ('survived' is a text label with 2 distinct values)"
                                       if task == "binary" else "inferred: 'band' is a text label with 3 distinct values")

    if "model" in RUNS[task]:  # the model the run named was the one tuned and trained
        assert prepared["model"]["name"] == RUNS[task]["model"]
        assert client.xcom(run_id, "training.train", 0)["model"] == RUNS[task]["model"]

    evaluation = client.xcom(run_id, "evaluation.evaluate", 0)
    assert evaluation["task"] == task and evaluation["blessed"], evaluation["reasons"]
    assert {"auc", "accuracy", "precision", "recall"} <= set(evaluation["overall"])
    assert evaluation["headline"]["direction"] == "max"

    deployed = client.xcom(run_id, "serving.deploy_serving")
    assert deployed["eval_metric"]["name"] == evaluation["headline"]["metric"]
    response = httpx.post(deployed["url"], json={"instances": [prepared["sample_instance"]]}, timeout=30)
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction["classes"] == CLASSES[task]
    assert len(prediction["probabilities"]) == len(CLASSES[task])
    assert sum(prediction["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    summary = client.xcom(run_id, "summarize")
    assert summary["task"] == task


# -- a model's second run (issue 27): the warm-start lookup now finds the first --------------------


@pytest.fixture(scope="module")
def second_runs(classifier_runs):
    """Each model run again once its first run succeeded: the shipped classifier with warm start
    (the default), the built-in model on the multiclass file with `warm_start: false`."""
    client, _ = classifier_runs
    confs = {"binary": RUNS["binary"], "multiclass": {**RUNS["multiclass"], "warm_start": False}}
    return client, _run_all(client, confs, "-again")


@pytest.mark.parametrize("task", list(RUNS))
def test_a_model_s_second_run_succeeds_and_says_whether_it_warm_started(second_runs, task):
    client, runs = second_runs
    run_id, state = runs[task]
    assert_succeeded(client, run_id, state)
    plan, search = client.xcom(run_id, "validate_params"), client.xcom(run_id, "tuning.wait_oracle")
    summary = client.xcom(run_id, "summarize")
    if task == "binary":  # a user model: the chief compares the declared spaces after prepare
        assert plan["warm_start"] == ("warm start from run e2e-binary if its model's search space and feature "
                                      "spec match (decided by the chief after prepare)")
        assert search["warm_start"]["from"] == "e2e-binary" and search["warm_start"]["trials"] >= 1, search
        assert search["warm_start"]["note"] in summary["search"]
    else:
        assert plan["warm_start"] == "no warm start: turned off (warm_start=false)"
        assert search["warm_start"] is None
