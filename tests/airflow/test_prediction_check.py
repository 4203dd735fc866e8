"""The smoke test's check of one prediction: every number finite, and at least one number.

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
