"""Training state that survives a killed pod.

`{model_dir}/checkpoints/` holds:
- `latest/`             keras.callbacks.BackupAndRestore: weights + optimizer + epoch, every epoch;
- `best.weights.h5`     the weights of the best epoch so far (by the objective);
- `early_stopping.json` best value/epoch, epochs without improvement, whether training stopped;
- `fingerprint.json`    what the state was trained with; another configuration starts afresh.

Keras' own EarlyStopping keeps its best weights and patience counter in memory, so a
restarted pod would forget them; `ResumableEarlyStopping` persists both.
"""
from __future__ import annotations

import hashlib
import json
import math

import keras

from trainer import storage

LATEST_DIR = "latest"
BEST_WEIGHTS = "best.weights.h5"
STATE_FILE = "early_stopping.json"
FINGERPRINT_FILE = "fingerprint.json"


def fingerprint(**config) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def reset_if_changed(checkpoint_dir: str, print_id: str, *also_clear: str) -> bool:
    """Clear `checkpoint_dir` (and `also_clear`) unless it was written for `print_id`.

    Resuming weights trained with other hyperparameters would silently produce a model
    nobody asked for. Returns True when an earlier state is kept (a resume)."""
    path = storage.join(checkpoint_dir, FINGERPRINT_FILE)
    if storage.exists(path) and json.loads(storage.read_text(path)).get("fingerprint") == print_id:
        return True
    for directory in (checkpoint_dir, *also_clear):
        storage.rmtree(directory)
    storage.makedirs(checkpoint_dir)
    storage.write_text(path, json.dumps({"fingerprint": print_id}) + "\n")
    return False


def backup_and_restore(checkpoint_dir: str) -> keras.callbacks.BackupAndRestore:
    # double_checkpoint: a pod killed while writing still leaves the previous epoch readable.
    # delete_checkpoint=False: a retry after training finished (e.g. killed while exporting)
    # resumes at the last epoch instead of training again.
    return keras.callbacks.BackupAndRestore(
        backup_dir=storage.join(checkpoint_dir, LATEST_DIR), save_freq="epoch",
        double_checkpoint=True, delete_checkpoint=False)


class ResumableEarlyStopping(keras.callbacks.Callback):
    """Early stopping on `monitor` that keeps the best weights on disk and resumes its counters.

    Place it before BackupAndRestore in the callback list: its state for an epoch is then
    on disk before that epoch counts as done."""

    def __init__(self, checkpoint_dir: str, monitor: str, mode: str, patience: int):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self._state_path = storage.join(checkpoint_dir, STATE_FILE)
        self.best_weights_path = storage.join(checkpoint_dir, BEST_WEIGHTS)
        self.state = {"best": None, "best_epoch": None, "wait": 0, "epochs_completed": 0, "stopped": False}
        if storage.exists(self._state_path):
            self.state.update(json.loads(storage.read_text(self._state_path)))
        self.first_epoch: int | None = None  # the epoch this process started at

    @property
    def stopped(self) -> bool:
        return bool(self.state["stopped"])

    def _improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        best = self.state["best"]
        return best is None or (value < best if self.mode == "min" else value > best)

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor not in (logs or {}):
            raise KeyError(f"objective {self.monitor!r} not among the epoch's metrics {sorted(logs or {})}")
        value = float(logs[self.monitor])
        if self._improved(value):
            self.state.update(best=value, best_epoch=epoch, wait=0)
            tmp = f"{storage.temp_name(self.best_weights_path)}.weights.h5"  # Keras insists on the suffix
            self.model.save_weights(tmp, overwrite=True)
            storage.rename(tmp, self.best_weights_path)
        else:
            self.state["wait"] += 1
        self.state["epochs_completed"] = epoch + 1
        if self.patience and self.state["wait"] >= self.patience:
            self.state["stopped"] = True
            self.model.stop_training = True
        storage.write_text(self._state_path, json.dumps(self.state) + "\n")

    def restore_best(self, model) -> bool:
        """Load the best epoch's weights into `model`; False when no epoch ever improved."""
        if not storage.exists(self.best_weights_path):
            return False
        if model.optimizer is not None and not model.optimizer.built:
            # The file holds optimizer slots too; an unbuilt optimizer would skip them with a warning.
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.best_weights_path)
        return True
