"""The worker's Keras Tuner `Tuner`: resumes trials, keeps its lease, reports what it did.

Subclasses implement `run_execution` (one fit of a trial, resumable from `TrialProgress`);
this class runs the executions, heartbeats while a trial runs, drops a trial the chief has
handed to someone else, reports each epoch's objective on the heartbeat (`report_epoch`) and
stops a trial the chief prunes, and records every trial it finished.

A pruned trial ends normally (Keras Tuner status COMPLETED, scored with its best epoch so far)
and carries `pruned: <reason>` in its record: Keras Tuner has no 'pruned' status, and its
COMPLETED trials are the ones every oracle learns from (KT bayesian fits on them, the tpe
oracle rebuilds its study from them); a STOPPED trial would be invisible to them, so the
region it measured as bad would be sampled again.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import keras_tuner as kt
from keras_tuner.src.engine import tuner_utils

from trainer.tuning.distributed import records
from trainer.tuning.distributed.resume import ExecutionLog, TrialProgress
from trainer.tuning.distributed.rpc import LeaseLost, LeasedOracleClient
from trainer.tuning.search_space import user_values
from trainer.tuning.settings import TUNING_DIR, Settings

log = logging.getLogger("trainer.tuning.distributed.worker")


class Heartbeat:
    """Renews this worker's lease every `interval` seconds, independently of how long an
    epoch takes, and remembers the trials the chief said this worker no longer holds."""

    def __init__(self, client: LeasedOracleClient, interval: float):
        self._client = client
        self._interval = interval
        self._trial_id: str | None = None
        self._lost: set[str] = set()
        self._pruned: dict[str, str] = {}  # trial id -> the chief's reason to stop it
        self._last_epoch: dict[str, tuple[int, float]] = {}  # repeated on each beat until the next
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._thread.start()

    def track(self, trial_id: str | None) -> None:
        if trial_id is not None:
            self._lost.discard(trial_id)  # handed back to us (e.g. after a chief restart)
        self._trial_id = trial_id

    def lost(self, trial_id: str) -> bool:
        return trial_id in self._lost

    def pruned(self, trial_id: str) -> str | None:
        return self._pruned.get(trial_id)

    def report(self, trial_id: str, step: int, value: float) -> str | None:
        """Send the objective after `step` epochs now (a heartbeat carrying it); the chief's
        reason to stop the trial, if it prunes it."""
        self._last_epoch[trial_id] = (step, value)
        self._beat(trial_id, (step, value))
        return self.pruned(trial_id)

    def _beat(self, trial_id: str, epoch: tuple[int, float] | None) -> None:
        answer = self._client.heartbeat(trial_id, timeout=max(self._interval, 1.0), epoch=epoch)
        if answer.lost:
            self._lost.add(trial_id)
        if answer.pruned:
            self._pruned[trial_id] = answer.pruned

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            trial_id = self._trial_id
            if trial_id is not None:
                self._beat(trial_id, self._last_epoch.get(trial_id))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 2)


@dataclass
class _Running:
    trial_id: str
    started: float  # monotonic: what `seconds` measures
    started_at: float = field(default_factory=time.time)  # wall clock, for the trials-over-time view
    resumed: int = 0  # epochs recovered from storage instead of retrained
    epochs: int = 0
    objective: float | None = None  # as sent to the oracle (its answers carry float32)
    lost: bool = False
    pruned: str | None = None  # the chief's reason, once it pruned the trial
    failure: str | None = None  # why the trial failed (a diverged loss), for its record


class LeasedTuner(kt.Tuner):
    def __init__(self, oracle, settings: Settings, tuner_id: str):
        super().__init__(oracle=oracle, directory=settings.args.run_root, project_name=TUNING_DIR, overwrite=False,
                         executions_per_trial=settings.args.executions_per_trial, tuner_id=tuner_id)
        self.settings = settings
        self.finished: list[dict] = []  # the trials whose end the chief accepted from this worker
        self._heartbeat: Heartbeat | None = None
        self._current: _Running | None = None

    def connect(self, client: LeasedOracleClient, heartbeat_seconds: float) -> None:
        self.oracle = client
        self._heartbeat = Heartbeat(client, heartbeat_seconds)

    def close(self) -> None:
        if self._heartbeat:
            self._heartbeat.stop()

    # -- one trial --------------------------------------------------------------------------------

    def on_trial_begin(self, trial):
        self._current = _Running(trial.trial_id, time.monotonic())
        self._heartbeat.track(trial.trial_id)
        log.info("trial %s begins: %s", trial.trial_id, user_values(trial.hyperparameters.values))

    def run_trial(self, trial, *args, **kwargs):
        values = user_values(trial.hyperparameters.values)
        epochs = int(trial.hyperparameters.values.get("tuner/epochs", self.settings.args.epochs))  # Hyperband's
        initial_epoch = int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
        progress = TrialProgress(self.project_dir, trial.trial_id)
        histories = []
        for execution in range(self.executions_per_trial):
            record = progress.load(execution)
            if record.complete:
                self.note_resumed(len(record.epochs))
            else:
                record = self.run_execution(trial, values, execution, epochs, initial_epoch, progress, record)
            histories.append(record.history())
            if self._current.pruned:  # finished: its later executions are not run
                break
        self._current.epochs = max(len(h.history.get(self.oracle.objective.name, [])) for h in histories) \
            if self._current.pruned else epochs
        objective = self.oracle.objective
        self._current.objective = tuner_utils.convert_to_metrics_dict(histories, objective).get(objective.name)
        return histories  # Keras Tuner averages the best epoch of each execution

    def run_execution(self, trial, values: dict, execution: int, epochs: int, initial_epoch: int,
                      progress: TrialProgress, record: ExecutionLog) -> ExecutionLog:
        """Run epochs [initial_epoch, epochs) of one execution, continuing after what
        `record` (and any backup) already holds: report the epochs recovered with
        `note_resumed`, call `check_lease` at least once per epoch, return `record` complete."""
        raise NotImplementedError

    def note_resumed(self, epochs: int) -> None:
        if epochs > 0:
            self._current.resumed += epochs
            log.info("trial %s resumes: %d epoch(s) recovered", self._current.trial_id, epochs)

    def check_lease(self) -> None:
        if self._heartbeat.lost(self._current.trial_id):
            raise LeaseLost(f"trial {self._current.trial_id} was handed to another tuner")

    def report_epoch(self, execution: int, epoch: int, logs: dict) -> bool:
        """After epoch `epoch` (0-based) of `execution`: report the objective to the chief, on the
        heartbeat, when early stopping is on; True when the chief pruned the trial (the caller
        stops it at once). Only the first execution reports: later ones repeat its epochs."""
        if self.settings.early_stopping == "none":
            return False
        if execution == 0:
            value = (logs or {}).get(self.oracle.objective.name)
            if value is not None:
                self._current.pruned = self._heartbeat.report(self._current.trial_id, epoch + 1, float(value))
        self._current.pruned = self._current.pruned or self._heartbeat.pruned(self._current.trial_id)
        if self._current.pruned:
            log.info("trial %s pruned after epoch %d: %s", self._current.trial_id, epoch + 1, self._current.pruned)
        return bool(self._current.pruned)

    def note_failure(self, reason: str) -> None:
        self._current.failure = reason

    def _try_run_and_update_trial(self, trial, *args, **kwargs):
        try:
            super()._try_run_and_update_trial(trial, *args, **kwargs)
        except LeaseLost as exc:
            self._current.lost = True
            log.warning("dropping trial %s: %s", trial.trial_id, exc)

    def on_trial_end(self, trial):
        self._heartbeat.track(None)
        current = self._current
        if current.lost:
            return  # its progress stays: the new holder resumes from it
        if trial.message:
            log.warning("trial %s %s: %s", trial.trial_id, trial.status, trial.message.strip().splitlines()[-1])
        seconds = round(time.monotonic() - current.started, 3)
        outcome = {"epochs": current.epochs, "seconds": seconds, "resumed_from_epoch": current.resumed,
                   "tuner_id": self.tuner_id, "started_at": round(current.started_at, 3),
                   "ended_at": round(time.time(), 3)}
        if current.pruned:
            outcome["pruned"] = current.pruned
        if current.failure:
            outcome["failure"] = current.failure
        records.write_outcome(self.project_dir, trial.trial_id, self.tuner_id, outcome)
        try:
            self.oracle.end_trial(trial)
        except LeaseLost as exc:
            log.warning("the chief refused the end of trial %s: %s", trial.trial_id, exc)
            return
        TrialProgress(self.project_dir, trial.trial_id).clear()
        final = self.oracle.get_trial(trial.trial_id)
        record = records.trial_record(final, self.tuner_id, outcome)
        if record["objective"] is not None and current.objective is not None:
            record["objective"] = float(current.objective)
        self.finished.append(record)
        log.info("trial %s ended: %s %s=%s in %.1fs", trial.trial_id, final.status, self.settings.objective,
                 record["objective"], outcome["seconds"])
        self.save()
