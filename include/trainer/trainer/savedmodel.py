"""Export a trained model as the SavedModel TF Serving loads (contract in docs/contracts.md).

Signatures, both returning {label: [None, 1] float32}:
- `serving_default(examples)`: serialized tf.Example, tf.string [None] — what TFMA and
  gRPC/REST clients holding tf.Examples send;
- `serving_raw(**features)`: one [None, 1] tensor per feature (float32 numeric, string
  categorical) — what a REST client sends as JSON.
"""
from __future__ import annotations

from trainer import storage
from trainer.featurespec import FeatureSpec

FEATURE_SPEC_ASSET = "assets.extra/feature_spec.json"  # TF Serving ignores assets.extra files it does not know


def export_saved_model(model, spec: FeatureSpec, path: str) -> str:
    """Write the SavedModel to a temporary sibling, then swap it in: `path` is always complete."""
    import keras
    import tensorflow as tf

    parse_spec = spec.parse_spec()
    label = spec.label

    def serve_examples(examples):
        return {label: model(tf.io.parse_example(examples, parse_spec), training=False)}

    def serve_raw(features):
        return {label: model(features, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_examples,
                         input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    archive.add_endpoint("serving_raw", serve_raw, input_signature=[spec.raw_signature()])

    storage.remove_stale_temps(path)
    tmp = storage.temp_name(path)
    try:
        archive.write_out(tmp, verbose=False)
        # The spec travels with the model: a client (or the serving smoke test) can build
        # requests from the model directory alone.
        spec.save(storage.join(tmp, FEATURE_SPEC_ASSET))
        storage.replace_dir(tmp, path)
    except BaseException:
        storage.rmtree(tmp)
        raise
    return path


def is_complete(path: str) -> bool:
    return storage.exists(storage.join(path, "saved_model.pb")) and storage.exists(storage.join(path, "variables"))
