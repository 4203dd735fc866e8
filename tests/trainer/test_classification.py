"""Classification as a task: inference of the task, the label vocabulary, heads and metrics,
served probabilities and class names, TFMA metrics and thresholds of a classifier."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_step

from tune_contract.enums import MAX_INFERRED_CLASSES

# -- the task: inferred, or given and checked against the data --------------------------------------

@pytest.mark.parametrize("values,task", [
    (["yes", "no", "yes"], "binary"),
    ([True, False, True], "binary"),
    (["a", "b", "c", "a"], "multiclass"),
    ([0, 1, 1, 0], "binary"),
    ([1, 2, 3, 2, 1], "multiclass"),
    ([1.0, 2.0, 3.0], "multiclass"),                        # whole floats are class numbers
    (list(range(MAX_INFERRED_CLASSES + 1)), "regression"),  # too many values: a quantity
    ([0.5, 1.25, 3.0], "regression"),
])
def test_task_inferred_from_the_label_column(values, task):
    from trainer.prepare import choose_task

    inferred, why = choose_task(pd.Series(values), "y", None)
    assert inferred == task
    assert why.startswith("inferred: 'y' is")


@pytest.mark.parametrize("values,given,message", [
    (["yes", "no"], "regression", "regression needs a numeric label"),
    (["a", "b", "c"], "binary", "binary needs exactly 2 classes"),
    ([0, 1], "multiclass", "multiclass needs at least 3 classes"),
    ([0.5, 1.5, 2.5], "multiclass", "with fractions"),
])
def test_a_task_the_data_contradicts_is_refused_naming_task_and_allowed_values(values, given, message):
    from trainer.errors import BadInput
    from trainer.prepare import choose_task

    with pytest.raises(BadInput) as caught:
        choose_task(pd.Series(values), "y", given)
    assert caught.value.field == "--task"
    assert message in caught.value.reason and "allowed: regression, binary, multiclass" in caught.value.reason


def test_label_vocabulary_sorted_numerically_when_numbers():
    from trainer.prepare import label_vocabulary

    assert label_vocabulary(pd.Series(["10", "2", "1"])) == ["1", "2", "10"]
    assert label_vocabulary(pd.Series(["yes", "no"])) == ["no", "yes"]


# -- prepare on the bundled classification data ------------------------------------------------------

def _prepared(tmp_path_factory, source: str, *flags: str) -> dict:
    run_root = tmp_path_factory.mktemp(source) / "runs" / source
    code, result = run_step("prepare", run_root, "--source", source, *flags)
    assert code == 0
    return {"run_root": run_root, "result": result}


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> dict:
    return _prepared(tmp_path_factory, "iris", "--objective", "val_accuracy")


@pytest.fixture(scope="module")
def titanic(tmp_path_factory) -> dict:
    return _prepared(tmp_path_factory, "titanic", "--sample-rows", "500")


def test_prepare_records_the_inferred_task_and_vocabulary(iris):
    import tensorflow as tf
    from trainer import featurespec

    result = iris["result"]
    assert result["task"] == "multiclass" and result["label_vocabulary"] == ["setosa", "versicolor", "virginica"]
    assert result["task_reason"] == "inferred: 'Species' is a text label with 3 distinct values"
    spec = featurespec.load(result["feature_spec"])
    assert spec.task == "multiclass" and spec.label_vocabulary == ["setosa", "versicolor", "virginica"]
    assert spec.label_stats is None
    records = list(tf.data.TFRecordDataset(str(Path(result["data_dir"]) / "train.tfrecord")).batch(1000))[0]
    labels = tf.io.parse_example(records, spec.parse_spec(include_label=True))["Species"].numpy().ravel()
    assert set(labels) == {0, 1, 2}  # the class index, not the name
    assert json.loads((Path(result["data_dir"]) / "sample_instances.json").read_text())["labels"][0] in \
        spec.label_vocabulary


@pytest.mark.parametrize("flags,field,message", [
    (("--task", "regression"), "--task", "regression needs a numeric label"),
    (("--task", "binary"), "--task", "binary needs exactly 2 classes"),
    (("--objective", "val_mae"), "--objective", "'val_mae' is not reported for a multiclass task"),
])
def test_prepare_refuses_a_contradicting_task_or_objective_and_writes_nothing(tmp_path, flags, field, message,
                                                                             capsys):
    run_root = tmp_path / "runs" / "bad"
    code, result = run_step("prepare", run_root, "--source", "iris", *flags)
    assert code == 2 and result is None
    assert f"{field}: " in capsys.readouterr().err and not (run_root / "data").exists()


# -- heads, losses and metrics --------------------------------------------------------------------

@pytest.mark.parametrize("task,loss,metrics", [
    ("regression", "mse", ["mae"]),
    ("binary", "binary_crossentropy", ["auc", "accuracy", "precision", "recall"]),
    ("multiclass", "sparse_categorical_crossentropy", ["accuracy", "auc", "precision", "recall"]),
])
def test_each_task_compiles_its_loss_and_named_metrics(task, loss, metrics):
    from trainer import heads

    assert heads.loss(task) == loss
    assert [m if isinstance(m, str) else m.name for m in heads.metrics(task)] == metrics


def test_multiclass_auc_is_micro_averaged_one_vs_rest():
    import numpy as np
    from trainer import heads

    auc = next(m for m in heads.metrics("multiclass") if m.name == "auc")
    y_true = np.array([0, 1, 2])
    perfect = np.eye(3, dtype="float32")
    auc.update_state(y_true, perfect)
    assert float(auc.result()) == pytest.approx(1.0)


@pytest.mark.parametrize("fixture,objectives", [
    ("iris", {"val_auc", "val_accuracy", "val_precision", "val_recall", "val_loss"}),
    ("titanic", {"val_auc", "val_accuracy", "val_precision", "val_recall", "val_loss"}),
])
def test_the_builtin_model_fits_every_classification_task(request, fixture, objectives):
    from trainer import data
    from trainer.model import build_model

    prepared = request.getfixturevalue(fixture)
    data_dir = prepared["result"]["data_dir"]
    spec = data.load_feature_spec(data_dir)
    model = build_model({"num_layers": 1, "units": 8, "batch_size": 64}, spec)
    history = model.fit(data.load_dataset(data_dir, "train", spec, 64), epochs=1, verbose=0,
                        validation_data=data.load_dataset(data_dir, "eval", spec, 64))
    assert objectives <= set(history.history)
    assert model.output_shape == ((None, 3) if fixture == "iris" else (None, 1))


def test_the_example_classifier_declares_its_space_and_a_conditional_parameter(iris, titanic):
    import sys

    import keras_tuner as kt
    from trainer import data
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include" / "models"))  # the models folder
    from tune_serve_models.classifier import build

    numeric_only = data.load_feature_spec(iris["result"]["data_dir"])
    hp = kt.HyperParameters()
    model = build(hp, numeric_only, "multiclass")
    assert {p.name for p in hp.space} == {"blocks", "units", "dropout", "learning_rate", "batch_size"}
    assert model.output_shape == (None, 3)
    assert sorted(t.name.split(":")[0] for t in model.inputs) == sorted(map(numeric_only.keras_key,
                                                                             numeric_only.feature_names))
    categorical = data.load_feature_spec(titanic["result"]["data_dir"])
    hp = kt.HyperParameters()
    assert build(hp, categorical, "binary").output_shape == (None, 1)
    assert "embedding_dim" in {p.name for p in hp.space}  # only with a categorical feature


# -- export: served probabilities and class names -----------------------------------------------------

@pytest.fixture(scope="module")
def titanic_model(titanic) -> dict:
    code, result = run_step("train", titanic["run_root"], "--rank", "0", "--epochs", "2", "--patience", "0",
                            "--objective", "val_auc", "--direction", "max",
                            "--hyperparameters", json.dumps({"num_layers": 1, "units": 16, "batch_size": 64,
                                                             "learning_rate": 0.01}))
    assert code == 0
    return result


def test_a_classifier_serves_probabilities_and_class_names(titanic, titanic_model):
    import tensorflow as tf

    loaded = tf.saved_model.load(titanic_model["model_path"])
    instance = titanic["result"]["sample_instance"]
    out = loaded.signatures["serving_default"](**{k: tf.constant([v]) for k, v in instance.items()})
    assert set(out) == {"probabilities", "classes"}
    assert out["probabilities"].shape == (1, 2)
    assert float(tf.reduce_sum(out["probabilities"])) == pytest.approx(1.0, abs=1e-5)
    assert [c.decode() for c in out["classes"].numpy()[0]] == ["no", "yes"]
    assert "val_auc" in titanic_model["metrics"] or "auc" in titanic_model["metrics"]


# -- TFMA: metrics and thresholds of a classifier --------------------------------------------------

def _evaluate(prepared, model, *flags):
    code, result = run_step("evaluate", prepared["run_root"], "--rank", "0", "--model-path", model["model_path"],
                            *flags)
    assert code == 0
    return result


def test_binary_metrics_overall_and_per_slice_with_calibration(titanic, titanic_model):
    result = _evaluate(titanic, titanic_model)
    assert result["task"] == "binary" and result["blessed"]
    assert {"auc", "accuracy", "precision", "recall", "calibration", "example_count"} <= set(result["overall"])
    assert 0 <= result["overall"]["auc"] <= 1
    assert {s["feature"] for s in result["slices"]} == {"class", "age", "sex"}
    assert all("auc" in s for s in result["slices"])
    assert result["calibration_plot"] and {"mean_prediction", "mean_label"} <= set(result["calibration_plot"][0])
    assert result["headline"]["metric"] == "auc" and result["headline"]["direction"] == "max"
    report = Path(result["report"]).read_text()
    assert "AUC" in report and "Calibration plot" in report and "positive class yes" in report


def test_an_auc_lower_bound_refuses_with_the_metric_and_threshold_named(titanic, titanic_model):
    result = _evaluate(titanic, titanic_model, "--auc-lower-bound", "0.999")
    assert not result["blessed"]
    assert any(r.startswith("auc on overall = ") and "required >= 0.999" in r for r in result["reasons"])


def test_an_auc_change_threshold_against_the_baseline_has_the_right_direction(titanic, titanic_model):
    same = _evaluate(titanic, titanic_model, "--baseline-model-path", titanic_model["model_path"],
                     "--max-auc-decrease", "0")
    assert same["blessed"], same["reasons"]  # no lower than serving: equal passes
    assert same["baseline"]["overall"]["auc"] == pytest.approx(same["overall"]["auc"])


def test_regression_thresholds_do_not_apply_to_a_classifier(titanic, titanic_model):
    result = _evaluate(titanic, titanic_model, "--max-mae-increase", "0")
    assert result["thresholds_not_applicable"] == {"max_mae_increase": 0.0}
    assert "max_mae_increase" not in result["thresholds"]


def test_an_auc_change_threshold_refuses_the_lower_of_two_models(titanic, titanic_model):
    """Two different models, each evaluated against the other as the serving baseline with no
    AUC decrease allowed: exactly the one with the lower AUC is refused, and says so."""
    code, weak = run_step("train", titanic["run_root"], "--rank", "1", "--epochs", "1", "--patience", "0",
                          "--seed", "3", "--hyperparameters", json.dumps({"num_layers": 1, "units": 2,
                                                                          "learning_rate": 1e-4}))
    assert code == 0
    one = _evaluate(titanic, titanic_model, "--baseline-model-path", weak["model_path"], "--max-auc-decrease", "0")
    other = _evaluate(titanic, weak, "--baseline-model-path", titanic_model["model_path"], "--max-auc-decrease", "0")
    assert one["overall"]["auc"] != pytest.approx(other["overall"]["auc"], abs=1e-9)
    lower, higher = sorted((one, other), key=lambda e: e["overall"]["auc"])
    assert higher["blessed"] and not lower["blessed"]
    [failure] = lower["failed_thresholds"]
    assert failure["metric"] == "auc_diff" and failure["threshold"] == "candidate - baseline >= -0"
    assert any("auc on overall: lower than the model serving" in r for r in lower["reasons"]), lower["reasons"]


def test_the_example_classifier_trains_and_exports_through_the_trainers_path(titanic, tmp_path):
    """build() → compile_for_task → fit → the same export as `train`: served probabilities and
    class names (what the model loader will do with it)."""
    import sys

    import keras
    import keras_tuner as kt
    import tensorflow as tf
    from trainer import data, heads, savedmodel
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include" / "models"))
    from tune_serve_models.classifier import build

    data_dir = titanic["result"]["data_dir"]
    spec = data.load_feature_spec(data_dir)
    keras.utils.set_random_seed(0)
    hp = kt.HyperParameters()
    model = heads.compile_for_task(build(hp, spec, spec.task), spec.task, hp.get("learning_rate"))
    history = model.fit(data.load_dataset(data_dir, "train", spec, hp.get("batch_size")), epochs=2, verbose=0,
                        validation_data=data.load_dataset(data_dir, "eval", spec, 64)).history
    assert history["val_auc"][-1] > 0.6
    path = savedmodel.export_saved_model(model, spec, str(tmp_path / "saved_model"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    instance = titanic["result"]["sample_instance"]
    out = serve(**{k: tf.constant([v]) for k, v in instance.items()})
    assert out["probabilities"].shape == (1, 2) and [c.decode() for c in out["classes"].numpy()[0]] == ["no", "yes"]
