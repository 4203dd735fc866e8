"""The fit of one resolved candidate: seeded, over every GPU of the pod, resumable.

A restarted pod continues from its last finished epoch (trainer.checkpointing); a stop decided
before the restart (early stopping, a diverging loss) stands, and no epoch is trained again.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from tune_contract import layout

from trainer import storage
from trainer.training.resolve import Training


@dataclass(frozen=True)
class Fitted:
    """What the fit leaves: the model (its latest epoch's weights), and how the fit went."""

    model: Any  # keras.Model
    replicas: int  # MirroredStrategy replicas it trained on
    global_batch_size: int
    eval_ds: Any  # tf.data.Dataset of the eval split, in global batches
    early_stopping: Any  # checkpointing.ResumableEarlyStopping: the best epoch, and whether it stopped
    diverged: str | None  # why the training loss diverged (trainer.divergence), None if it did not
    epochs: int  # epochs completed, over every run of the pod
    initial_epoch: int  # the epoch this run started from (0 unless resumed)
    logs: str


def fit(training: Training) -> Fitted:
    import keras

    from trainer import checkpointing, data, distribution, divergence, user_model
    from trainer.training.history import EpochHistory

    # A TFRecord pipeline has no known length, so Keras learns the epoch's end by running
    # out of data and warns about it every epoch; that is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")

    args, spec = training.args, training.spec
    out = training.model_dir
    checkpoints, logs = storage.join(out, "checkpoints"), storage.join(out, "logs")
    config_id = checkpointing.fingerprint(model=args.model, hyperparameters=training.hyperparameters, seed=args.seed,
                                          objective=training.objective, direction=training.direction,
                                          feature_spec=spec.to_dict())
    checkpointing.reset_if_changed(checkpoints, config_id, logs)

    keras.utils.set_random_seed(args.seed)
    # Over every GPU of the pod (MirroredStrategy) when it has more than one: the model is
    # built and compiled in the strategy's scope, and the dataset yields the global batch.
    strategy = distribution.strategy()
    model = training.builder.build(training.hp, spec, strategy=strategy)
    batch_size = distribution.global_batch_size(user_model.batch_size(training.hp), strategy)
    train_ds = data.load_dataset(training.data_dir, "train", spec, batch_size, shuffle=True, seed=args.seed)
    eval_ds = data.load_dataset(training.data_dir, "eval", spec, batch_size)
    distribution.build_for_fit(model, eval_ds, strategy)

    early_stopping = checkpointing.ResumableEarlyStopping(checkpoints, training.objective, training.direction,
                                                          args.patience)
    diverging = divergence.guard(checkpoints, divergence.baseline_loss(spec))
    if not early_stopping.stopped and not diverging.reason:  # a stop decided before a restart stands
        # shuffle=False: the dataset shuffles itself (seeded); Keras cannot shuffle a tf.data pipeline.
        model.fit(train_ds, validation_data=eval_ds, epochs=args.epochs, shuffle=False, verbose=2, callbacks=[
            diverging,  # stops the fit (and keeps the reason) once the loss diverges
            early_stopping,
            checkpointing.backup_and_restore(checkpoints),
            keras.callbacks.TensorBoard(log_dir=logs),
            # one row per epoch for the run view's learning curves (the Airflow side reads no
            # TensorBoard events); a resumed pod appends, the view keeps an epoch's last row
            EpochHistory(layout.history(args.run_root, args.rank)),
        ])
    epochs_completed = early_stopping.state["epochs_completed"]
    initial_epoch = early_stopping.first_epoch if early_stopping.first_epoch is not None else epochs_completed
    return Fitted(model=model, replicas=strategy.num_replicas_in_sync, global_batch_size=batch_size, eval_ds=eval_ds,
                  early_stopping=early_stopping, diverged=diverging.reason, epochs=epochs_completed,
                  initial_epoch=initial_epoch, logs=logs)
