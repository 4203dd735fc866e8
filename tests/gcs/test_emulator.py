"""The emulator is no laxer than GCS on what the code relies on, and both sides reach it."""
from __future__ import annotations

import os
import subprocess

import pytest
from conftest import TRAINER_PY
from google.api_core import exceptions
from google.cloud import storage


@pytest.fixture
def blobs(bucket):
    client = storage.Client.create_anonymous_client()
    client.project = "emulator"
    return client, client.bucket(bucket.removeprefix("gs://"))


def test_a_create_if_absent_loses_to_an_existing_object(blobs):
    _, b = blobs
    b.blob("versions/1").upload_from_string("first", if_generation_match=0)
    with pytest.raises(exceptions.PreconditionFailed):
        b.blob("versions/1").upload_from_string("second", if_generation_match=0)
    assert b.blob("versions/1").download_as_bytes() == b"first"


def test_a_stale_generation_loses(blobs):
    _, b = blobs
    b.blob("config.json").upload_from_string("v1")
    generation = b.get_blob("config.json").generation
    b.blob("config.json").upload_from_string("v2", if_generation_match=generation)
    with pytest.raises(exceptions.PreconditionFailed):
        b.blob("config.json").upload_from_string("v3", if_generation_match=generation)
    assert b.blob("config.json").download_as_bytes() == b"v2"


def test_listings_come_in_pages(blobs):
    client, b = blobs
    for i in range(25):
        b.blob(f"many/{i:03d}").upload_from_string("x")
    pages = [len(list(page)) for page in client.list_blobs(b.name, prefix="many/", page_size=10).pages]
    assert pages == [10, 10, 5]


def test_tensorflow_reads_and_writes_through_its_own_client(gcs, bucket):
    """tf.io.gfile, a SavedModel export and load, TFRecords and a checkpoint: what the trainer,
    TFMA and the model server do on gs:// in production."""
    code = f"""
import tensorflow as tf
root = "{bucket}/tf"
with tf.io.gfile.GFile(root + "/hello.txt", "w") as f:
    f.write("hi")
assert tf.io.gfile.GFile(root + "/hello.txt").read() == "hi"
model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
model.export(root + "/model/1", verbose=False)
loaded = tf.saved_model.load(root + "/model/1")  # kept: its variables die with it
assert loaded.serve(tf.ones((2, 3))).shape == (2, 1)
with tf.io.TFRecordWriter(root + "/data.tfrecord") as w:
    for i in range(3):
        w.write(b"x" * i)
assert sum(1 for _ in tf.data.TFRecordDataset(root + "/data.tfrecord")) == 3
assert tf.train.Checkpoint(v=tf.Variable(3.0)).save(root + "/ckpt/c").endswith("c-1")
print(sorted(tf.io.gfile.listdir(root)))
"""
    out = subprocess.run([str(TRAINER_PY), "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **gcs.env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, "\n".join(out.stderr.splitlines()[-12:])
    assert out.stdout.strip().splitlines()[-1] == "['ckpt/', 'data.tfrecord', 'hello.txt', 'model/']"
