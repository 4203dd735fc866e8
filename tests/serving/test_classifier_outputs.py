"""A classifier's two outputs through the stand-in, in TF Serving's REST shapes: row format
answers one object per instance (`{"probabilities": [..], "classes": [..]}`), columnar format
one list per output; the class names are text, not base64 (their output name has no `_bytes`)."""
from __future__ import annotations

import base64

import numpy as np
import pytest
import saved_models
from serving_helpers import serving_version_1

INSTANCES = [{"size": 1.5, "weight": 2.0, "colour": "green"}, {"size": -3.0, "weight": 0.25, "colour": "red"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = saved_models.make_classifier(str(tmp_path_factory.mktemp("classifier") / "model"))
    with serving_version_1(tmp_path_factory.mktemp("serving"), model) as process:
        yield process


def test_row_format_answers_one_object_per_instance(server):
    response = server.predict({"instances": INSTANCES})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and all(set(p) == {"probabilities", "classes"} for p in predictions)
    for prediction, instance in zip(predictions, INSTANCES):
        assert prediction["classes"] == list(saved_models.CLASSES)
        np.testing.assert_allclose(prediction["probabilities"], saved_models.expected_probabilities(instance),
                                   rtol=1e-5)


def test_columnar_format_answers_one_list_per_output(server):
    inputs = {name: [i[name] for i in INSTANCES] for name in INSTANCES[0]}
    response = server.predict({"inputs": inputs})
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert set(outputs) == {"probabilities", "classes"}
    assert outputs["classes"] == [list(saved_models.CLASSES)] * 2
    assert np.asarray(outputs["probabilities"]).shape == (2, 3)


def test_from_examples_answers_the_same_probabilities(server):
    examples = [base64.b64encode(saved_models.serialized_example(i)).decode() for i in INSTANCES]
    response = server.predict({"signature_name": "from_examples", "instances": [{"b64": e} for e in examples]})
    assert response.status_code == 200, response.text
    rows = server.predict({"instances": INSTANCES}).json()["predictions"]
    assert response.json()["predictions"] == rows
