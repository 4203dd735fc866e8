"""Trials of the run's Keras model (the model contract, trainer.user_model) on the prepared
data (trainer.data), under MirroredStrategy when the tuner pod has more than one GPU."""
from __future__ import annotations

import math
import zlib

import keras
from keras_tuner.src import errors as kt_errors
from keras_tuner.src.engine import tuner_utils

from trainer import data, distribution, divergence, user_model
from trainer.errors import BadInput
from trainer.tuning.distributed.resume import ExecutionLog, TrialProgress
from trainer.tuning.distributed.worker import LeasedTuner


def check_objective(objective: str, data_dir: str, spec, model: user_model.UserModel, space) -> None:
    """Fail fast (bad input) when `objective` is not a metric the model reports: every trial
    would otherwise train to the end and then fail. One batch of its default build, no training."""
    net = model.build(model.hyperparameters(space), spec)
    x, y = next(iter(data.load_dataset(data_dir, "eval", spec, batch_size=8).take(1)))
    names = sorted(net.test_on_batch(x, y, return_dict=True))
    names += [f"val_{n}" for n in names]
    if objective not in names:
        raise BadInput("--objective", f"{objective!r} is not reported by the model; available: {', '.join(names)}")


class _LeaseGuard(keras.callbacks.Callback):
    """Stops a fit within one batch once the chief has handed the trial to someone else.
    It raises rather than setting stop_training: a normal end would let BackupAndRestore
    delete the backup the new holder resumes from."""

    def __init__(self, tuner: LeasedTuner):
        super().__init__()
        self._tuner = tuner

    def on_train_batch_end(self, batch, logs=None):
        self._tuner.check_lease()

    def on_epoch_end(self, epoch, logs=None):
        self._tuner.check_lease()


class _EpochLog(keras.callbacks.Callback):
    """Records each epoch's metrics in the trial's progress (before BackupAndRestore saves)."""

    def __init__(self, progress: TrialProgress, execution: int, record: ExecutionLog):
        super().__init__()
        self._progress, self._execution, self._record = progress, execution, record

    def on_epoch_end(self, epoch, logs=None):
        self._record.epochs[epoch] = {k: float(v) for k, v in (logs or {}).items()}
        self._progress.save(self._execution, self._record)

    def on_train_end(self, logs=None):
        self._record.complete = True
        self._progress.save(self._execution, self._record)


class _EpochReport(keras.callbacks.Callback):
    """Reports each epoch's objective to the chief (early stopping) and ends the fit normally
    once the chief prunes the trial: a pruned trial is finished, so its backup may go with the
    normal end (unlike `_LeaseGuard`'s, which another tuner resumes from)."""

    def __init__(self, tuner: LeasedTuner, execution: int):
        super().__init__()
        self._tuner, self._execution = tuner, execution

    def on_epoch_end(self, epoch, logs=None):
        if self._tuner.report_epoch(self._execution, epoch, logs or {}):
            self.model.stop_training = True


class _DivergedTrial(keras.callbacks.Callback):
    """A NaN/inf loss fails the trial at once with the reason (Keras Tuner records it FAILED
    and the worker takes the next trial) instead of training on, or scoring, garbage."""

    def __init__(self, tuner: LeasedTuner, objective: str):
        super().__init__()
        self._tuner, self._objective, self._epoch = tuner, objective, 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._fail(divergence.non_finite_batch((logs or {}).get("loss"), self._epoch, batch))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self._objective)
        if value is not None and not math.isfinite(float(value)):
            self._fail(f"diverged: {self._objective} is {float(value)} at epoch {epoch + 1}")

    def _fail(self, reason):
        if reason:
            self._tuner.note_failure(reason)
            raise kt_errors.FailedTrialError(reason)


class KerasTrialTuner(LeasedTuner):
    def __init__(self, oracle, settings, tuner_id: str, data_dir: str, spec, model: user_model.UserModel, space):
        super().__init__(oracle, settings, tuner_id)
        self.data_dir = data_dir
        self.spec = spec
        self.model = model
        self.space = space  # a trial's values replace its defaults (see UserModel.hyperparameters)
        self.strategy = distribution.strategy()

    def run_execution(self, trial, values, execution, epochs, initial_epoch, progress, record):
        keras.backend.clear_session()  # trials of one worker must not accumulate graphs
        seed = zlib.crc32(f"{self.settings.args.seed}:{trial.trial_id}:{execution}".encode()) % 2**31
        keras.utils.set_random_seed(seed)
        hp = self.model.hyperparameters(self.space, values)
        net = self.model.build(hp, self.spec, strategy=self.strategy)
        parent = trial.hyperparameters.values.get("tuner/trial_id")
        if parent:  # a Hyperband round continues from its parent trial's best weights
            net.load_weights(self._get_checkpoint_fname(parent))
        batch_size = distribution.global_batch_size(user_model.batch_size(hp), self.strategy)
        train = data.load_dataset(self.data_dir, "train", self.spec, batch_size, shuffle=True, seed=seed)
        evals = data.load_dataset(self.data_dir, "eval", self.spec, batch_size)
        distribution.build_for_fit(net, evals, self.strategy)

        self.note_resumed(max(progress.backed_up_epoch(execution) - initial_epoch, 0))
        callbacks = [_LeaseGuard(self), _DivergedTrial(self, self.oracle.objective.name),
                     _EpochLog(progress, execution, record), _EpochReport(self, execution)]
        if self.settings.args.algorithm == "hyperband":  # later rounds load this trial's best weights
            callbacks.append(self._best_epoch_checkpoint(trial, progress, execution))
        # Last, so that the epoch's metrics are on storage before the backup claims the epoch.
        callbacks.append(keras.callbacks.BackupAndRestore(progress.backup_dir(execution), double_checkpoint=True))
        net.fit(train, validation_data=evals, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                shuffle=False, verbose=0)  # the dataset shuffles itself (seeded)
        return record

    def _best_epoch_checkpoint(self, trial, progress, execution):
        callback = tuner_utils.SaveBestEpoch(self.oracle.objective, self._get_checkpoint_fname(trial.trial_id))
        objective = self.oracle.objective
        for e in range(execution + 1):  # a resumed trial must not overwrite a better checkpoint
            for logs in progress.load(e).epochs.values():
                if objective.has_value(logs) and objective.better_than(objective.get_value(logs), callback.best_value):
                    callback.best_value = objective.get_value(logs)
        return callback
