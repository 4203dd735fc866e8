"""A classifier on the Airflow side: the smoke test's check of one prediction (every number finite,
and at least one number), and the run note naming the task and its metric.

A classifier's prediction carries its class names beside the probabilities (row format:
one object per instance, as TF Serving answers a multi-output signature)."""
import pytest

from tune_serve.serving.rest_client import finite_prediction


@pytest.mark.parametrize("prediction,ok", [
    ([412.5], True),                                                          # a regression
    ({"probabilities": [0.2, 0.8], "classes": ["no", "yes"]}, True),           # a classifier
    ({"probabilities": [0.1, 0.3, 0.6], "classes": ["a", "b", "c"]}, True),
    ({"probabilities": [float("nan"), 0.5], "classes": ["no", "yes"]}, False),  # a poisoned classifier
    ([float("inf")], False),
    ({"classes": ["no", "yes"]}, False),                                      # no number at all
    ([], False),
    ([True], False),
])
def test_a_prediction_passes_when_every_number_is_finite(prediction, ok):
    assert finite_prediction(prediction) is ok


def test_the_run_note_names_a_classifiers_task_and_metric():
    from tune_serve.workflow import run_note

    summary = {"task": "binary", "deployed": {"model_name": "titanic", "version": 2, "candidate_rank": 1,
                                              "eval_mae": None, "eval_metric": {"name": "auc", "value": 0.8285}}}
    evaluation = {"rank": 1, "baseline_model_path": None}
    assert run_note.text(summary, [evaluation]) == "deployed titanic v2 (binary, candidate 1, AUC 0.829, first version)"
    regression = {"deployed": {"model_name": "diamonds", "version": 3, "candidate_rank": 0, "eval_mae": 411.9}}
    assert run_note.text(regression, []) == "deployed diamonds v3 (candidate 0, MAE 411.9)"
