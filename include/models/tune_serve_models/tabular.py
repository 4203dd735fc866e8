"""The built-in tabular model (the default of the `model` run parameter), behind the model contract.

One `keras.Input` per feature (shape (1,), named by the spec's Keras key of the feature):
numeric features are normalised with the train-split statistics of the feature spec,
categorical features are one-hot encoded with its vocabulary (index 0 = out of vocabulary).
A Dense/Dropout stack follows, and the task's output layer (trainer.sdk.heads.output).

Its hyperparameters are the declarative default space (tune_contract.search_space.DEFAULT_SPACE)
with tune_contract.search_space.DEFAULT_HYPERPARAMETERS as defaults. Returned uncompiled: the
trainer compiles it for the task with the `learning_rate` hyperparameter. Like any model it
imports from the trainer only the model SDK (trainer.sdk).
"""
from __future__ import annotations

from tune_contract.search_space import DEFAULT_HYPERPARAMETERS, DEFAULT_SPACE, validate

from trainer.sdk import FeatureSpec, declare, heads

_SPACE = validate(list(DEFAULT_SPACE))


def build(hp, spec: FeatureSpec, task: str):
    import keras

    values = {p.name: declare(hp, p, default=DEFAULT_HYPERPARAMETERS[p.name]) for p in _SPACE.parameters}
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
    for i in range(int(values["num_layers"])):
        x = keras.layers.Dense(int(values["units"]), activation="relu", name=f"dense_{i}")(x)
        if values["dropout"] > 0:
            x = keras.layers.Dropout(values["dropout"], name=f"dropout_{i}")(x)
    return keras.Model(inputs=inputs, outputs=heads.output(x, spec, task), name="tabular_regressor")
