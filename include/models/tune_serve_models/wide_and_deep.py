"""A wide-and-deep model (Cheng et al. 2016), as the tutorial this package grew from tunes one.

- Wide: a linear model over the categorical features one-hot encoded and over their
  crosses, every pair of categorical features hashed together (keras.layers.HashedCrossing;
  on diamonds cut × color, cut × clarity, color × clarity), so it memorises combinations the
  deep side would have to learn.
- Deep: numeric features normalised, categorical ones embedded, through a tuned Dense stack.
  An optional bottleneck layer exists only when the Boolean `bottleneck` is on, its width
  `bottleneck_units` a conditional hyperparameter (declared in `hp.conditional_scope`, so
  the search knows it only matters then).
- Both sides meet in the task's output layer (trainer.sdk.heads.output), trained jointly.

Returned uncompiled: the trainer compiles it for the task with `learning_rate`; `batch_size`
is the per-replica batch.
"""
from __future__ import annotations

import itertools

from trainer.sdk import FeatureSpec, heads

MAX_CROSSES = 10  # pairs of categorical features crossed on the wide side


def build(hp, spec: FeatureSpec, task: str):
    import keras

    num_layers = hp.Int("num_hidden_layers", 1, 3, default=2)
    hidden = hp.Int("hidden_size", 32, 256, step=32, default=64)
    dropout = hp.Choice("dropout", [0.0, 0.1, 0.2, 0.3], default=0.1)
    cross_bins = hp.Choice("cross_bins", [64, 256, 1024], default=256)
    bottleneck = hp.Boolean("bottleneck", default=False)
    with hp.conditional_scope("bottleneck", [True]):  # None while the bottleneck is off
        bottleneck_units = hp.Int("bottleneck_units", 4, 32, step=4, default=8)
    hp.Choice("learning_rate", [1e-3, 3e-3, 1e-2], default=3e-3)  # read by the trainer's compile
    hp.Choice("batch_size", [64, 128, 256], default=128)  # per replica, read by the trainer

    inputs, deep, wide = {}, [], []
    for name, stats in spec.numeric.items():
        key = spec.keras_key(name)
        inputs[key] = keras.Input(shape=(1,), name=key, dtype="float32")
        deep.append(keras.layers.Normalization(mean=stats["mean"], variance=stats["variance"],
                                               name=f"normalize_{key}")(inputs[key]))
    for name, vocab in spec.categorical.items():
        key = spec.keras_key(name)
        inputs[key] = keras.Input(shape=(1,), name=key, dtype="string")
        wide.append(keras.layers.StringLookup(vocabulary=vocab, output_mode="one_hot",
                                              name=f"one_hot_{key}")(inputs[key]))
        ids = keras.layers.StringLookup(vocabulary=vocab, name=f"ids_{key}")(inputs[key])
        width = max(2, min(16, round(1.6 * (len(vocab) + 1) ** 0.56)))  # a usual rule of thumb
        embedded = keras.layers.Embedding(len(vocab) + 1, width, name=f"embed_{key}")(ids)
        deep.append(keras.layers.Flatten(name=f"flat_{key}")(embedded))
    categorical = [spec.keras_key(n) for n in spec.categorical]
    for a, b in list(itertools.combinations(categorical, 2))[:MAX_CROSSES]:
        wide.append(keras.layers.HashedCrossing(num_bins=cross_bins, output_mode="one_hot",
                                                name=f"cross_{a}_x_{b}")((inputs[a], inputs[b])))

    x = _concat(deep, "deep_features")
    for i in range(num_layers):
        x = keras.layers.Dense(hidden, activation="relu", name=f"deep_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"deep_dropout_{i}")(x)
    if bottleneck:
        x = keras.layers.Dense(bottleneck_units, activation="relu", name="bottleneck")(x)
    if wide:  # the wide side enters the output layer linearly, beside the deep side's last layer
        x = keras.layers.Concatenate(name="wide_and_deep")([_concat(wide, "wide_features"), x])
    return keras.Model(inputs=inputs, outputs=heads.output(x, spec, task), name="wide_and_deep")


def _concat(tensors, name):
    import keras

    return keras.layers.Concatenate(name=name)(tensors) if len(tensors) > 1 else tensors[0]
