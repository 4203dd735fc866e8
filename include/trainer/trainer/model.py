"""The tabular regression model shared by tuning and training.

One `keras.Input` per feature (shape (1,), named by the spec's Keras key of the feature): numeric features are
normalised with the train-split statistics of the feature spec, categorical features are
one-hot encoded with its vocabulary (index 0 = out of vocabulary). A Dense/Dropout stack
follows, and a single output named as the label.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from tune_contract.search_space import MODEL_LIMITS, model_rule, model_value_ok

from trainer import heads
from trainer.errors import BadInput
from trainer.featurespec import FeatureSpec

DEFAULT_HYPERPARAMETERS = {"num_layers": 2, "units": 64, "dropout": 0.1, "learning_rate": 1e-3, "batch_size": 128}

# name -> (type, check, rule shown in the error message), from the limits the contract sets
# (tune_contract.search_space.MODEL_LIMITS), so validate_params refuses a space beyond them too.
_RULES = {
    name: (int if limits[0] else float, lambda v, n=name: model_value_ok(n, v), model_rule(name))
    for name, limits in MODEL_LIMITS.items()
}


def resolve_hyperparameters(values: Mapping[str, Any] | None, field: str = "hyperparameters") -> dict:
    """Defaults overlaid with `values`; unknown keys (e.g. Keras Tuner's `tuner/epochs`) are
    ignored. A known key of the wrong type or range raises BadInput naming it."""
    resolved = dict(DEFAULT_HYPERPARAMETERS)
    for name, (kind, ok, rule) in _RULES.items():
        if name not in (values or {}):
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
        if kind is int:
            if value != int(value):  # 64.0 is fine (JSON/YAML), 64.5 is not
                raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not ok(value):
            raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
        resolved[name] = value
    return resolved


def build_model(values: Mapping[str, Any], spec: FeatureSpec, task: str | None = None):
    """A compiled keras.Model (Adam, loss mse, metric mae → `val_mae` during fit).

    Deterministic after keras.utils.set_random_seed(seed)."""
    import keras

    hp = resolve_hyperparameters(values)
    task = task or spec.task  # the task reaches the model through the feature spec
    inputs, encoded = {}, []
    for name, stats in spec.numeric.items():
        key = spec.keras_key(name)
        inputs[key] = keras.Input(shape=(1,), name=key, dtype="float32")
        norm = keras.layers.Normalization(mean=stats["mean"], variance=stats["variance"], name=f"normalize_{key}")
        encoded.append(norm(inputs[key]))
    for name, vocab in spec.categorical.items():
        key = spec.keras_key(name)
        inputs[key] = keras.Input(shape=(1,), name=key, dtype="string")
        lookup = keras.layers.StringLookup(vocabulary=vocab, output_mode="one_hot", name=f"one_hot_{key}")
        encoded.append(lookup(inputs[key]))

    x = keras.layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    for i in range(hp["num_layers"]):
        x = keras.layers.Dense(hp["units"], activation="relu", name=f"dense_{i}")(x)
        if hp["dropout"] > 0:
            x = keras.layers.Dropout(hp["dropout"], name=f"dropout_{i}")(x)
    output = heads.output(x, spec, task)

    model = keras.Model(inputs=inputs, outputs=output, name="tabular_regressor")
    return heads.compile_for_task(model, task, learning_rate=hp["learning_rate"])

