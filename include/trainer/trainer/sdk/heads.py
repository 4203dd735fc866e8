"""What a task puts on top of a model, and how it is compiled.

Part of the model SDK (trainer.sdk), shared by the built-in model and user models (the model
contract): a model builder calls
`output(x, spec, task)` for its last layer, or builds its own; the trainer calls
`compile_for_task` on a model the builder left uncompiled.

Per task (the metric names are what fit() logs, `val_` + name on the eval split, and the
objectives tune_contract.enums.TASK_OBJECTIVES offers):
- regression: Dense(1) in label units; loss mse; metric `mae`.
- binary: Dense(1, sigmoid), the probability of the second class of the label vocabulary;
  loss binary_crossentropy; metrics `auc` (ROC), `accuracy`, `precision`, `recall` (at 0.5).
- multiclass: Dense(n, softmax), one probability per class in vocabulary order; loss
  sparse_categorical_crossentropy (the label is the class index); metric `accuracy`, and
  `auc`, `precision`, `recall` MICRO-averaged one-vs-rest: every (example, class) pair is one
  binary decision (the one-hot label against that class's probability), pooled over classes.
"""
from __future__ import annotations

import math

from tune_contract.enums import TASKS
from tune_contract.errors import BadInput

from trainer.sdk.featurespec import FeatureSpec

DEFAULT_LEARNING_RATE = 1e-3


def _check(task: str) -> str:
    if task not in TASKS:
        raise BadInput("task", f"unknown task {task!r}; allowed: {', '.join(TASKS)}")
    return task


def output(x, spec: FeatureSpec, task: str = "regression"):
    """The label's output layer for `task`, named as the label's Keras key."""
    import keras

    name = spec.keras_key(spec.label)
    if _check(task) == "binary":
        return keras.layers.Dense(1, activation="sigmoid", name=name)(x)
    if task == "multiclass":
        if spec.num_classes < 3:
            raise BadInput("task", f"multiclass needs the spec's label vocabulary (>= 3 classes), "
                                   f"got {spec.num_classes}")
        return keras.layers.Dense(spec.num_classes, activation="softmax", name=name)(x)
    return _regression(x, spec)


def compile_for_task(model, task: str = "regression", learning_rate: float = DEFAULT_LEARNING_RATE):
    """Compile `model` with Adam and the task's loss and metrics (see the module's docstring)."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss=loss(task), metrics=metrics(task))
    return model


def loss(task: str) -> str:
    return {"regression": "mse", "binary": "binary_crossentropy",
            "multiclass": "sparse_categorical_crossentropy"}[_check(task)]


def metrics(task: str) -> list:
    import keras

    if _check(task) == "regression":
        return ["mae"]
    if task == "binary":
        return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy"),
                keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall")]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy"), *_one_vs_rest_metrics()]


def _one_vs_rest_metrics() -> list:
    """AUC, precision and recall on a sparse class index against softmax probabilities: the
    label is one-hot encoded to the prediction's width, then Keras' binary metric pools every
    (example, class) pair (micro average)."""
    import keras

    def one_hot_first(metric_class):
        class OneVsRest(metric_class):
            def update_state(self, y_true, y_pred, sample_weight=None):
                y_true = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"),
                                           keras.ops.shape(y_pred)[-1])
                return super().update_state(y_true, y_pred, sample_weight)

        OneVsRest.__name__ = f"OneVsRest{metric_class.__name__}"
        return OneVsRest

    return [one_hot_first(keras.metrics.AUC)(name="auc"), one_hot_first(keras.metrics.Precision)(name="precision"),
            one_hot_first(keras.metrics.Recall)(name="recall")]


def _regression(x, spec: FeatureSpec):
    """Dense(1) named as the label. With label stats, the Dense layer predicts the
    standardised label and a Rescaling layer maps it back to label units: a label in the
    thousands (prices) would otherwise need hundreds of epochs to reach its scale."""
    import keras

    stats = spec.label_stats
    name = spec.keras_key(spec.label)
    if not stats:
        return keras.layers.Dense(1, name=name)(x)
    std = math.sqrt(stats["variance"]) or 1.0
    standardized = keras.layers.Dense(1, name=f"{name}_standardized")(x)
    return keras.layers.Rescaling(scale=std, offset=stats["mean"], name=name)(standardized)
