"""An example classifier following the model contract: `tune_serve_models.classifier:build`.

    build(hp, spec, task) -> keras.Model (uncompiled: the trainer compiles it for the task)

Numeric features are normalised with the feature spec's train statistics and categorical ones
embedded (a tuned width, index 0 for values outside the vocabulary); a residual Dense block
follows, with a tuned depth, width and dropout, and the task's head from `trainer.sdk.heads`:
a sigmoid probability for `binary`, a softmax over the spec's label vocabulary for
`multiclass`. It serves a regression too (same head function), but is meant for classifiers.

Declared hyperparameters (the search space): blocks, units, dropout, embedding_dim (only
when the spec has a categorical feature: a conditional parameter), learning_rate, batch_size.
"""
from __future__ import annotations


def build(hp, spec, task: str):
    import keras
    from trainer.sdk import heads

    blocks = hp.Int("blocks", 1, 3, default=2)
    units = hp.Int("units", 16, 128, step=16, default=32)
    dropout = hp.Float("dropout", 0.0, 0.5, step=0.1, default=0.1)
    hp.Float("learning_rate", 1e-4, 3e-2, sampling="log", default=3e-3)
    hp.Choice("batch_size", [16, 32, 64], default=32)

    inputs, encoded = {}, []
    for name, stats in spec.numeric.items():
        key = spec.keras_key(name)
        inputs[key] = keras.Input(shape=(1,), name=key, dtype="float32")
        encoded.append(keras.layers.Normalization(mean=stats["mean"], variance=stats["variance"],
                                                  name=f"normalize_{key}")(inputs[key]))
    if spec.categorical:
        dim = hp.Int("embedding_dim", 2, 8, step=2, default=4)
        for name, vocab in spec.categorical.items():
            key = spec.keras_key(name)
            inputs[key] = keras.Input(shape=(1,), name=key, dtype="string")
            index = keras.layers.StringLookup(vocabulary=vocab, name=f"index_{key}")(inputs[key])
            embedded = keras.layers.Embedding(len(vocab) + 1, dim, name=f"embed_{key}")(index)
            encoded.append(keras.layers.Flatten(name=f"flat_{key}")(embedded))

    x = keras.layers.Concatenate(name="features")(encoded) if len(encoded) > 1 else encoded[0]
    x = keras.layers.Dense(units, activation="relu", name="stem")(x)
    for i in range(blocks):
        y = keras.layers.Dense(units, activation="relu", name=f"block_{i}")(x)
        if dropout > 0:
            y = keras.layers.Dropout(dropout, name=f"dropout_{i}")(y)
        x = keras.layers.Add(name=f"residual_{i}")([x, y])
    return keras.Model(inputs=inputs, outputs=heads.output(x, spec, task), name="classifier")
