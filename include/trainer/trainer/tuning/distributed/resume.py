"""Per-trial progress on shared storage, so a trial continues where it stopped.

Keras Tuner restarts a re-issued trial from epoch 0 (keras-team/keras-tuner#439). Here each
execution of a trial keeps, under the tuning directory::

    trial_{id}/resume/execution_{n}/epochs.json   metrics of every finished epoch; complete?
    trial_{id}/resume/execution_{n}/backup/       keras.callbacks.BackupAndRestore (weights,
                                                  optimizer, epoch) of a Keras trial

Keyed by trial id, the progress follows the trial to whichever worker gets it next (the
same tuner restarted, or another after a lease expired). It is removed once the chief has
accepted the trial's end, so it can never leak into another trial.

epochs.json is written before the backup at each epoch end: after a kill between the two
the epoch is re-run and its entry overwritten, never lost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from trainer import storage


@dataclass
class ExecutionLog:
    epochs: dict[int, dict] = field(default_factory=dict)  # epoch -> {metric: value}
    complete: bool = False

    def history(self):
        """A keras History over the recorded epochs, which Keras Tuner knows how to score."""
        import keras

        history = keras.callbacks.History()
        ordered = [self.epochs[e] for e in sorted(self.epochs)]
        names = sorted({name for logs in ordered for name in logs})
        history.history = {name: [logs.get(name) for logs in ordered] for name in names}
        return history

    def last_epoch(self) -> int:
        """Epochs finished, counted as Keras counts them (the next epoch to run)."""
        return max(self.epochs) + 1 if self.epochs else 0


class TrialProgress:
    def __init__(self, tuning_dir: str, trial_id: str):
        self.root = storage.join(tuning_dir, f"trial_{trial_id}", "resume")

    def _dir(self, execution: int) -> str:
        return storage.join(self.root, f"execution_{execution}")

    def backup_dir(self, execution: int) -> str:
        return storage.join(self._dir(execution), "backup")

    def load(self, execution: int) -> ExecutionLog:
        path = storage.join(self._dir(execution), "epochs.json")
        if not storage.exists(path):
            return ExecutionLog()
        data = json.loads(storage.read_text(path))
        return ExecutionLog({int(e): logs for e, logs in data["epochs"].items()}, bool(data["complete"]))

    def save(self, execution: int, log: ExecutionLog) -> None:
        storage.makedirs(self._dir(execution))
        text = json.dumps({"epochs": {str(e): logs for e, logs in sorted(log.epochs.items())}, "complete": log.complete})
        storage.write_text(storage.join(self._dir(execution), "epochs.json"), text)

    def backed_up_epoch(self, execution: int) -> int:
        """The epoch a BackupAndRestore backup would resume at (0: none). Keras writes its
        metadata in place; one cut short by a kill is dropped with the backup (the epochs
        are retrained) rather than failing every later attempt at the trial."""
        path = storage.join(self.backup_dir(execution), "training_metadata.json")
        if not storage.exists(path):
            return 0
        try:
            return int(json.loads(storage.read_text(path))["epoch"])
        except (ValueError, KeyError, TypeError):
            storage.rmtree(self.backup_dir(execution))
            return 0

    def clear(self) -> None:
        storage.rmtree(self.root)
