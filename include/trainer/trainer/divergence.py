"""A training that diverged: its best epoch is not a model to ship.

keras.callbacks.TerminateOnNaN only stops the fit; the train step would then export the best
epoch before the loss blew up, a model from a run that went wrong (the reported case: loss
1.5 M → 44 M, eval MAE 1,238 against 411 for a sane learning rate). The rule here fails the
candidate instead, with its reason:

- a non-finite training loss (NaN or ±inf), at any batch or epoch end: at once;
- a blow-up: the epoch's training loss above BLOW_UP_FACTOR × the lowest epoch loss so far,
  for BLOW_UP_EPOCHS epochs in a row. One noisy epoch is tolerated; a loss that stays an order
  of magnitude above what the same run already reached has left the basin it found;
- collapsed / never learning, with a known baseline (regression with label statistics: the
  MSE of always predicting the label's mean is its variance B): a training loss no better than
  that constant (>= BASELINE_SHARE × B) for COLLAPSE_EPOCHS epochs in a row after the run had
  reached B/2 or better, or for STUCK_EPOCHS epochs in a row at any time. Measured on diamonds
  (bench/learning_rate_bounds.py): lr 0.046 with 3×128 units reaches 3.1 M then sits at 15.85 M
  (B = 15.81 M: every ReLU dead, the network outputs the mean; val MAE 3,069), lr 0.1 never
  gets below B (val MAE 2,915) — neither rises 10×, both would ship a constant.

The training loss, not the validation objective, is watched: it is what the optimiser
minimises, so it only rises that far when the steps themselves are too large.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence

BLOW_UP_FACTOR = 10.0
BLOW_UP_EPOCHS = 2
BASELINE_SHARE = 0.9
COLLAPSE_EPOCHS = 2
STUCK_EPOCHS = 5
STATE_FILE = "divergence.json"


def _number(value: float) -> str:
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def check_history(losses: Sequence[float], baseline: float | None = None) -> str | None:
    """Why the training with these per-epoch losses diverged (at the first epoch where a
    rule fires), or None. `baseline`: the loss of a constant prediction, when known."""
    best, above_best, no_better = math.inf, 0, 0
    for epoch, loss in enumerate(losses):
        loss = float(loss)
        if not math.isfinite(loss):
            return f"diverged: training loss is {loss} at epoch {epoch + 1}"
        above_best = above_best + 1 if loss > BLOW_UP_FACTOR * best else 0
        if above_best >= BLOW_UP_EPOCHS:
            return (f"diverged: training loss {_number(loss)} at epoch {epoch + 1} is above {BLOW_UP_FACTOR:g}x its "
                    f"best {_number(best)} for {above_best} epochs in a row")
        if baseline:
            no_better = no_better + 1 if loss >= BASELINE_SHARE * baseline else 0
            learned = best <= baseline / 2
            if no_better >= (COLLAPSE_EPOCHS if learned else STUCK_EPOCHS):
                how = f"collapsed after reaching {_number(best)}" if learned else "never learned"
                return (f"diverged: training loss {_number(loss)} at epoch {epoch + 1} is no better than predicting "
                        f"the label's mean ({_number(baseline)}) for {no_better} epochs in a row ({how})")
        best = min(best, loss)
    return None


def baseline_loss(spec) -> float | None:
    """The MSE of predicting the label's mean (its variance), for a regression label with
    statistics; None otherwise (no absolute anchor, only the relative rules apply)."""
    stats = getattr(spec, "label_stats", None)
    task = getattr(spec, "task", "regression") or "regression"
    if task != "regression" or not stats or not stats.get("variance"):
        return None
    return float(stats["variance"])


def non_finite_batch(loss, epoch: int, batch: int) -> str | None:
    if loss is None or math.isfinite(float(loss)):
        return None
    return f"diverged: training loss is {float(loss)} at epoch {epoch + 1}, batch {batch + 1}"


def guard(state_dir: str | None = None, baseline: float | None = None):
    """The Keras callback applying the rule (its state kept in `state_dir` across restarts)."""
    import keras

    from trainer import storage

    class DivergenceGuard(keras.callbacks.Callback):
        """Stops the fit when the rule fires and keeps the reason (`reason`). Place it before
        BackupAndRestore, so its state for an epoch is on storage before the epoch counts as done."""

        def __init__(self):
            super().__init__()
            self._path = storage.join(state_dir, STATE_FILE) if state_dir else None
            self.losses: list[float] = []
            self.reason: str | None = None
            if self._path and storage.exists(self._path):
                saved = json.loads(storage.read_text(self._path))
                self.losses, self.reason = [float(v) for v in saved["losses"]], saved.get("reason")
            self._epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            reason = non_finite_batch((logs or {}).get("loss"), self._epoch, batch)
            if reason and not self.reason:
                self.reason = reason
                self._save()
            if self.reason:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None:
                del self.losses[epoch:]  # a resumed epoch replaces what a killed pod left
                self.losses.append(float(loss))
            self.reason = self.reason or check_history(self.losses, baseline)
            self._save()
            if self.reason:
                self.model.stop_training = True

        def _save(self):
            if self._path:
                values = [v if math.isfinite(v) else str(v) for v in self.losses]
                storage.write_text(self._path, json.dumps({"losses": values, "reason": self.reason}) + "\n")

    return DivergenceGuard()
