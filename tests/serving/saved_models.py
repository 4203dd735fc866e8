"""Fixture SavedModels shaped like the trainer's `train` output (see docs/contracts.md).

Two numeric features and one categorical feature feed a tiny Keras functional model whose
weights are fixed, so a prediction identifies the fixture: `score = size + 2*weight +
colour_bonus + bias`, with `bias` chosen per fixture (tests tell versions apart by it).
`poison=True` makes every prediction NaN: a model that loads but must fail a smoke test.

Exported like the trainer does (keras.export.ExportArchive): `serving_default` takes one
[None] tensor per feature (what a REST client sends as `{"instances": [{"size": 1.5, ...}]}`),
`from_examples` takes serialized tf.Example `examples`.

Importable (serving venv) or run as a script, which the Airflow-side tests do:
    python tests/serving/saved_models.py OUT_DIR NAME:BIAS[:poison] ...
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

NUMERIC = ("size", "weight")
CATEGORICAL = ("colour",)
LABEL = "score"
COLOURS = ("red", "green", "blue")
COLOUR_BONUS = (10.0, 20.0, 30.0)  # "unknown colour" (out of vocabulary) adds 0

FEATURE_SPEC = {name: tf.io.FixedLenFeature([1], tf.float32) for name in NUMERIC}
FEATURE_SPEC.update({name: tf.io.FixedLenFeature([1], tf.string) for name in CATEGORICAL})


def build_model(bias: float, poison: bool = False) -> keras.Model:
    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in NUMERIC}
    inputs.update({name: keras.Input(shape=(1,), name=name, dtype="string") for name in CATEGORICAL})
    colour = keras.layers.StringLookup(vocabulary=list(COLOURS), output_mode="one_hot")(inputs["colour"])
    x = keras.layers.Concatenate()([inputs["size"], inputs["weight"], colour])
    dense = keras.layers.Dense(1, name=LABEL)
    out = dense(x)
    # one_hot puts the out-of-vocabulary slot first: [oov, red, green, blue]
    dense.set_weights([np.array([[1.0], [2.0], [0.0], *[[b] for b in COLOUR_BONUS]], "float32"),
                       np.array([bias], "float32")])
    if poison:
        out = keras.layers.Lambda(lambda t: t * float("nan"))(out)
    return keras.Model(inputs, out)


def export(model: keras.Model, path: str) -> str:
    archive = keras.export.ExportArchive()
    archive.track(model)
    raw_spec = {name: tf.TensorSpec([None], tf.float32, name=name) for name in NUMERIC}
    raw_spec.update({name: tf.TensorSpec([None], tf.string, name=name) for name in CATEGORICAL})

    def serve_examples(examples):
        return {LABEL: model(tf.io.parse_example(examples, FEATURE_SPEC), training=False)}

    def serve_raw(features):
        return {LABEL: model({name: tf.reshape(t, [-1, 1]) for name, t in features.items()}, training=False)}

    archive.add_endpoint("serving_default", serve_raw, input_signature=[raw_spec])
    archive.add_endpoint("from_examples", serve_examples,
                         input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    archive.write_out(path, verbose=False)
    return path


CLASSES = ("small", "medium", "large")


def make_classifier(path: str) -> str:
    """A 3-class classifier exported as the trainer exports one (trainer.savedmodel): outputs
    `probabilities` [None, 3] (softmax of fixed logits: size, weight, and their sum) and
    `classes` [None, 3] (the class names, in vocabulary order)."""
    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in NUMERIC}
    inputs.update({name: keras.Input(shape=(1,), name=name, dtype="string") for name in CATEGORICAL})
    x = keras.layers.Concatenate()([inputs["size"], inputs["weight"]])
    dense = keras.layers.Dense(3, activation="softmax", name=LABEL)
    model = keras.Model(inputs, dense(x))
    dense.set_weights([np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], "float32"), np.zeros(3, "float32")])
    classes = tf.constant(CLASSES)

    def outputs(probabilities):
        return {"probabilities": probabilities,
                "classes": tf.tile(tf.expand_dims(classes, 0), [tf.shape(probabilities)[0], 1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    raw_spec = {name: tf.TensorSpec([None], tf.float32, name=name) for name in NUMERIC}
    raw_spec.update({name: tf.TensorSpec([None], tf.string, name=name) for name in CATEGORICAL})
    archive.add_endpoint("serving_default", lambda features: outputs(
        model({name: tf.reshape(t, [-1, 1]) for name, t in features.items()}, training=False)),
        input_signature=[raw_spec])
    archive.add_endpoint("from_examples", lambda examples: outputs(
        model(tf.io.parse_example(examples, FEATURE_SPEC), training=False)),
        input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    archive.write_out(path, verbose=False)
    return path


def expected_probabilities(instance: dict) -> np.ndarray:
    logits = np.array([instance["size"], instance["weight"], instance["size"] + instance["weight"]])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def make_saved_model(path: str, bias: float = 0.0, poison: bool = False) -> str:
    return export(build_model(bias, poison), path)


def expected_score(instance: dict, bias: float) -> float:
    bonus = dict(zip(COLOURS, COLOUR_BONUS)).get(instance["colour"], 0.0)
    return instance["size"] + 2 * instance["weight"] + bonus + bias


def serialized_example(instance: dict) -> bytes:
    feature = {name: tf.train.Feature(float_list=tf.train.FloatList(value=[instance[name]])) for name in NUMERIC}
    feature.update({name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[instance[name].encode()]))
                    for name in CATEGORICAL})
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def main(argv: list[str]) -> None:
    out_dir, specs = argv[0], argv[1:]
    for spec in specs:
        name, bias, *flags = spec.split(":")
        make_saved_model(os.path.join(out_dir, name), float(bias), poison="poison" in flags)


if __name__ == "__main__":
    main(sys.argv[1:])
