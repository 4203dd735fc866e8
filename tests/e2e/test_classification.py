"""Both classification tasks through the real scheduler, each to a served prediction with class
probabilities: titanic (binary, the task given) and iris (multiclass, the task inferred)."""
from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e

SMALL = {"algorithm": "random", "max_trials": 2, "num_tuners": 1, "tuning_epochs": 2, "top_n": 1,
         "training_epochs": 3, "early_stopping_patience": 2}
RUNS = {
    "binary": {**SMALL, "source": "titanic", "sample_rows": 600, "task": "binary", "objective": "val_auc",
               "auc_lower_bound": 0.5, "model_name": "titanic-e2e"},
    # task and objective auto: iris is a bundled multiclass table, its default objective val_accuracy
    "multiclass": {**SMALL, "source": "iris", "model_name": "iris-e2e"},
}
CLASSES = {"binary": ["no", "yes"], "multiclass": ["setosa", "versicolor", "virginica"]}


@pytest.fixture(scope="module")
def classifier_runs(stack):
    client, _ = stack
    run_ids = {task: client.trigger(conf, run_id=f"e2e-{task}") for task, conf in RUNS.items()}
    return client, {task: (run_id, client.wait(run_id, timeout=1500)) for task, run_id in run_ids.items()}


@pytest.mark.parametrize("task", list(RUNS))
def test_a_classifier_runs_to_a_served_prediction_with_class_probabilities(classifier_runs, task):
    client, runs = classifier_runs
    run_id, state = runs[task]
    failed = [(t["task_id"], t["map_index"], t["state"]) for t in client.task_instances(run_id)
              if t["state"] not in ("success", "skipped")]
    assert state == "success", failed

    plan = client.xcom(run_id, "validate_params")
    assert plan["task"] == task
    assert plan["objective"] == {"name": "val_auc" if task == "binary" else "val_accuracy", "direction": "max"}
    prepared = client.xcom(run_id, "prepare_data")
    assert prepared["task"] == task and prepared["label_vocabulary"] == CLASSES[task]
    assert prepared["task_reason"].startswith("given by the run" if task == "binary" else "inferred: 'Species'")

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
