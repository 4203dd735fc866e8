"""Which tf.distribute strategy a step trains under, and the batch size it implies.

A training pod asks for 2 GPUs by default (and a tuner pod may ask for more than one):
with more than one visible GPU the model is built, compiled and trained under
`tf.distribute.MirroredStrategy` (one replica per GPU, gradients all-reduced); otherwise
under the default strategy (one device, no overhead).

As Keras documents for MirroredStrategy, the batch the dataset yields is the *global*
batch, split across replicas: global = per-replica × `num_replicas_in_sync`, so each GPU
sees the batch size the hyperparameters name and adding GPUs does not change the
per-device optimisation (Keras distributed training guide).
"""
from __future__ import annotations

import logging

log = logging.getLogger("trainer.distribution")


def replica_devices() -> list[str]:
    """The devices to mirror over: the visible GPUs (a test with no GPU replaces this with
    logical CPU devices)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_logical_devices("GPU")]


def strategy():
    """MirroredStrategy over the replica devices when there are more than one, else the
    default strategy."""
    import tensorflow as tf

    devices = replica_devices()
    if len(devices) > 1:
        chosen = tf.distribute.MirroredStrategy(devices=devices)
        log.info("training under MirroredStrategy over %d devices: %s", chosen.num_replicas_in_sync,
                 ", ".join(devices))
        return chosen
    return tf.distribute.get_strategy()


def global_batch_size(per_replica: int, chosen) -> int:
    """The batch the input pipeline yields: each replica gets `per_replica` examples."""
    return int(per_replica) * int(chosen.num_replicas_in_sync)


def build_for_fit(model, dataset, chosen) -> None:
    """Build `model`'s state (layers, loss, metrics) from one batch of `dataset` before fit.

    Keras 3.15 builds a model trained under a tf.distribute strategy from its first input
    batch *averaged across replicas* (`Trainer._maybe_symbolic_build` reduces it with MEAN),
    which fails on string features (AddN of strings): every model here takes raw categorical
    strings. The build only needs shapes and dtypes, so it is done here from one batch of
    the undistributed dataset, and Keras' reduce, left with nothing to build, is skipped.
    With one replica nothing changes."""
    if chosen.num_replicas_in_sync <= 1:
        return
    batch = next(iter(dataset.take(1)))
    with chosen.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
