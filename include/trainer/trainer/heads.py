"""What a task puts on top of a model, and how it is compiled.

Shared by the built-in model and user models (the model contract): a model builder calls
`output(x, spec, task)` for its last layer, or builds its own; the trainer calls
`compile_for_task` on a model the builder left uncompiled.
"""
from __future__ import annotations

import math

from trainer.featurespec import FeatureSpec

DEFAULT_LEARNING_RATE = 1e-3


def output(x, spec: FeatureSpec, task: str = "regression"):
    """The label's output layer for `task`, named as the label's Keras key."""
    if task != "regression":
        raise NotImplementedError(f"task {task!r}")
    return _regression(x, spec)


def compile_for_task(model, task: str = "regression", learning_rate: float = DEFAULT_LEARNING_RATE):
    """Compile `model` with Adam and the task's loss and metrics (regression: mse, metric mae →
    `val_mae` during fit)."""
    import keras

    if task != "regression":
        raise NotImplementedError(f"task {task!r}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse", metrics=["mae"])
    return model


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
