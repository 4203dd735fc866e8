"""Where prepared data lives and how a step reads it back as a tf.data pipeline.

Layout written by `prepare`:

    {run_root}/data/train.tfrecord        tf.Example records, every feature and the label [1]-shaped
    {run_root}/data/eval.tfrecord
    {run_root}/data/feature_spec.json     trainer.featurespec.FeatureSpec
    {run_root}/data/sample_instances.json a few eval rows as raw-feature dicts (serving smoke test)
"""
from __future__ import annotations

from trainer import featurespec, storage
from trainer.errors import BadInput
from trainer.featurespec import FeatureSpec

SPLITS = ("train", "eval")
FEATURE_SPEC_FILE = "feature_spec.json"
SAMPLE_INSTANCES_FILE = "sample_instances.json"
_SHUFFLE_BUFFER = 10_000


def data_dir(run_root: str) -> str:
    return storage.join(run_root, "data")


def split_path(data_dir: str, split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return storage.join(data_dir, f"{split}.tfrecord")


def feature_spec_path(data_dir: str) -> str:
    return storage.join(data_dir, FEATURE_SPEC_FILE)


def load_feature_spec(data_dir: str) -> FeatureSpec:
    path = feature_spec_path(data_dir)
    if not storage.exists(path):
        raise BadInput("--run-root", f"no prepared data: {path} not found (run the prepare step first)")
    return featurespec.load(path)


def load_dataset(data_dir: str, split: str, spec: FeatureSpec, batch_size: int,
                 shuffle: bool = False, seed: int = 0):
    """(features, label) batches: features {Keras input key: [batch, 1]} (float32 numeric,
    tf.string categorical), label [batch]: float32 (a regression's value, a binary classifier's
    class index 0/1) or int32 (a multiclass classifier's class index). Shuffled with `seed` when asked (a fresh order each
    epoch, the same sequence of orders for the same seed)."""
    import tensorflow as tf

    path = split_path(data_dir, split)
    if not storage.exists(path):
        raise BadInput("--run-root", f"no prepared data: {path} not found (run the prepare step first)")
    parse_spec = spec.parse_spec(include_label=True)
    label = spec.label

    def parse(serialized):
        features = tf.io.parse_example(serialized, parse_spec)
        target = tf.reshape(features.pop(label), [-1])
        if spec.is_classification:
            target = tf.cast(target, tf.int32 if spec.task == "multiclass" else tf.float32)
        return spec.to_keras_inputs(features), target

    ds = tf.data.TFRecordDataset(path)
    if shuffle:
        ds = ds.shuffle(_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    # Batch first, then parse the whole batch in one op: much faster than per-record parsing.
    return ds.batch(batch_size).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
