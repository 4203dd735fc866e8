"""Export a trained model as the SavedModel TF Serving loads (contract in docs/contracts.md).

Signatures, both returning, for a regression, {label's signature key: [None, 1] float32}; for a
classifier, {`probabilities`: [None, n] float32, `classes`: [None, n] string} (n = the classes of
the spec's label vocabulary, in its order; a binary model's two columns are P(first class) and
P(second class)), so a row-format REST answer is one object per instance:
`{"predictions": [{"probabilities": [0.1, 0.9], "classes": ["no", "yes"]}]}`:
- `serving_default(**features)`: one [None] tensor per feature (float32 numeric, string
  categorical), keyed by the feature's own name where TF allows it (`Solar.R`; see
  FeatureSpec.signature_key) — what a REST client sends without a signature name:
  `{"instances": [{"carat": 0.3, "cut": "Ideal", ...}]}`;
- `from_examples(examples)`: serialized tf.Example, tf.string [None] — what TFMA and batch
  clients holding tf.Examples send (`"signature_name": "from_examples"`).
"""
from __future__ import annotations

from trainer import featurespec, storage
from trainer.featurespec import FeatureSpec

SERVING_DEFAULT, FROM_EXAMPLES = "serving_default", "from_examples"
PROBABILITIES, CLASSES = "probabilities", "classes"  # a classifier's outputs (TFMA reads PROBABILITIES)
FEATURE_SPEC_ASSET = "assets.extra/feature_spec.json"  # TF Serving ignores assets.extra files it does not know


def export_saved_model(model, spec: FeatureSpec, path: str) -> str:
    """Write the SavedModel to a temporary sibling, then swap it in: `path` is always complete."""
    import keras
    import tensorflow as tf

    parse_spec = spec.parse_spec()
    output = spec.signature_key(spec.label)
    by_signature_key = {spec.signature_key(name): spec.keras_key(name) for name in spec.feature_names}

    classes = tf.constant(spec.label_vocabulary or [], tf.string)

    def outputs(predicted):
        if not spec.is_classification:
            return {output: predicted}
        if spec.task == "binary":  # one sigmoid unit: P(second class); both columns are served
            predicted = tf.concat([1.0 - predicted, predicted], axis=1)
        names = tf.tile(tf.expand_dims(classes, 0), [tf.shape(predicted)[0], 1])
        return {PROBABILITIES: predicted, CLASSES: names}

    def serve_examples(examples):
        return outputs(model(spec.to_keras_inputs(tf.io.parse_example(examples, parse_spec)), training=False))

    def serve_raw(features):
        inputs = {by_signature_key[key]: tf.reshape(tensor, [-1, 1]) for key, tensor in features.items()}
        return outputs(model(inputs, training=False))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SERVING_DEFAULT, serve_raw, input_signature=[spec.serving_signature()])
    archive.add_endpoint(FROM_EXAMPLES, serve_examples,
                         input_signature=[tf.TensorSpec([None], tf.string, name="examples")])

    storage.remove_stale_temps(path)
    tmp = storage.temp_name(path)
    try:
        archive.write_out(tmp, verbose=False)
        # The spec travels with the model: a client (or the serving smoke test) can build
        # requests from the model directory alone.
        featurespec.save(spec, storage.join(tmp, FEATURE_SPEC_ASSET))
        storage.replace_dir(tmp, path)
    except BaseException:
        storage.rmtree(tmp)
        raise
    return path


def is_complete(path: str) -> bool:
    return storage.exists(storage.join(path, "saved_model.pb")) and storage.exists(storage.join(path, "variables"))
