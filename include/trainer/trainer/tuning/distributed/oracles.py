"""The chief's oracle: Keras Tuner's search algorithms plus leases, a deadline and a restart
that keeps running trials with their workers.

Keras Tuner 1.4.8 alone, observed here:
- a worker killed for good leaves its tuner id and trial 'ongoing' forever, and the chief
  waits for them forever (`oracle_chief.exit_chief`);
- a restarted chief (`reload`) puts every ongoing trial back in the retry queue, so a
  worker still running it finishes it while another worker runs it again.

`LeaseMixin` fixes both on top of any of the five oracles (see `make_oracle`):
- every RPC from a tuner renews its lease; a tuner silent for `lease_seconds` is recorded
  as lost and its trial goes back to the front of the queue for another worker (which
  resumes it from the trial's backup); after `max_handoffs` such losses the trial is failed
  (a trial that kills its worker, e.g. by OOM, must not take every worker down);
- only the tuner holding a trial may report on it (`NotHolder` otherwise), and ending an
  already ended trial is a no-op, so a late or retried report cannot corrupt the result;
- a worker asking for a trial while others still run theirs waits (IDLE) instead of being
  stopped, as one of at most `standby_tuners` such workers: one of those trials may come back
  if its worker is lost. The others stop, so their (GPU) pods are released at the tail of the
  search instead of idling until its last trial ends;
- past `deadline_seconds` (counted from the search's first start, across chief restarts)
  no trial is handed out; running ones may finish;
- on reload, trials that were running stay assigned to their tuner ids with a fresh lease.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import threading
import time

import keras_tuner as kt
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine.oracle import LOCKS, THREADS

from trainer import storage
from trainer.tuning import search_space as ss
from trainer.tuning.algorithms.pruning import KEEP, Decision, Pruning
from trainer.tuning.algorithms import seeds
from trainer.tuning.algorithms.gp_oracle import GPOracle
from trainer.tuning.algorithms.optuna_oracle import TPEOracle
from trainer.tuning.settings import Settings

log = logging.getLogger("trainer.tuning.oracle")
Status = trial_module.TrialStatus


def synchronized(func):
    """Keras Tuner's `synchronized` (its per-oracle lock, re-entrant per thread), released also
    when `func` raises. Keras Tuner's own leaves the lock held on an exception, so after one
    refused report (NotHolder, ForgedTrial) the next call from another gRPC thread waits forever."""

    @functools.wraps(func)
    def wrapped(oracle, *args, **kwargs):
        thread = threading.current_thread().name
        acquire = THREADS[oracle] != thread
        if acquire:
            LOCKS[oracle].acquire()
            THREADS[oracle] = thread
        try:
            return func(oracle, *args, **kwargs)
        finally:
            if acquire:
                THREADS[oracle] = None
                LOCKS[oracle].release()

    return wrapped


class NotHolder(Exception):
    """A tuner reported on a trial it does not hold (its lease expired, or the chief restarted)."""


class ForgedTrial(Exception):
    """A tuner ended a trial with hyperparameters other than those the chief handed out."""


class LeaseMixin:
    def __init__(self, *args, lease_seconds: float, deadline_seconds: float | None, max_handoffs: int,
                 standby_tuners: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lease_seconds = lease_seconds
        self.standby_tuners = standby_tuners  # None: every worker waits for the search's end
        self.deadline_seconds = deadline_seconds
        self.max_handoffs = max_handoffs
        self.started_at = time.time()  # wall clock: persisted, so a restart does not extend the deadline
        self.lost_tuners: list[str] = []
        self.handoffs: dict[str, int] = {}
        self.finished_by: dict[str, str] = {}  # trial id -> tuner whose end_trial was accepted
        self.abort_reason: str | None = None
        self.deadline_hit = False  # the deadline stopped the search with trials left to run
        self._last_seen: dict[str, float] = {}  # tuner id -> time.monotonic() of its last RPC
        self._stop_issued = False
        self._persisted_ongoing: dict[str, str] = {}
        self._persisted_pruned: dict[str, str] = {}
        self.pruning = Pruning("none", "", "min")  # make_oracle sets the search's rule
        self.seeded: list[str] = []  # trials of a previous run seeding this one (warm_start)
        self.warm_start: dict | None = None
        self.verbose = 0  # Keras Tuner's display: this module logs one line per event instead

    # -- who holds what ---------------------------------------------------------------------------

    @synchronized
    def touch(self, tuner_id: str | None) -> None:
        if tuner_id:
            self._last_seen[tuner_id] = time.monotonic()

    def holder(self, trial_id: str) -> str | None:
        return next((t for t, trial in self.ongoing_trials.items() if trial.trial_id == trial_id), None)

    def _ended(self, trial_id: str) -> bool:
        return trial_id in self.end_order

    def _check_holder(self, tuner_id: str | None, trial_id: str) -> None:
        holder = self.holder(trial_id)
        # Without a tuner id (a plain Keras Tuner client) any current holder is accepted.
        if holder is None or (tuner_id is not None and tuner_id != holder):
            raise NotHolder(f"trial {trial_id} is held by {holder or 'no tuner'}, not by {tuner_id or 'this caller'}")

    @synchronized
    def check_holder(self, tuner_id: str | None, trial_id: str) -> None:
        self.touch(tuner_id)
        self._check_holder(tuner_id, trial_id)

    @synchronized
    def update_trial_from(self, tuner_id: str | None, trial_id: str, metrics, step=0):
        self.touch(tuner_id)
        if self._ended(trial_id):  # a retried report after a chief restart
            return self.trials[trial_id]
        self._check_holder(tuner_id, trial_id)
        return self.update_trial(trial_id, metrics, step=step)

    @synchronized
    def pruning_decision(self, trial_id: str) -> Decision:
        reason = self.pruning.pruned.get(trial_id)
        return Decision(True, reason) if reason else KEEP

    @synchronized
    def report_epoch(self, tuner_id: str | None, trial_id: str, step: int, value: float) -> Decision:
        """A tuner's objective after `step` epochs of `trial_id` (on its heartbeat): kept on the
        trial (what a restarted chief rebuilds from), then judged by the pruning rule."""
        self.touch(tuner_id)
        if self._ended(trial_id) or trial_id not in self.trials:
            reason = self.pruning.pruned.get(trial_id)
            return Decision(True, reason) if reason else KEEP
        self._check_holder(tuner_id, trial_id)
        if not self.pruning.active:
            return KEEP
        trial = self.trials[trial_id]
        metric = self.pruning.metric
        if not trial.metrics.exists(metric):
            trial.metrics.register(metric, direction=self.objective.direction)
        if step not in {int(o.step) for o in trial.metrics.get_history(metric)} and math.isfinite(value):
            trial.metrics.update(metric, value, step=step)
            self._save_trial(trial)
        was_pruned = trial_id in self.pruning.pruned
        decision = self.pruning.report(trial_id, step, value)
        if decision.prune and not was_pruned:
            self.save()  # the decision survives a restart
        return decision

    @synchronized
    def end_trial_from(self, tuner_id: str | None, trial) -> None:
        self.touch(tuner_id)
        if self._ended(trial.trial_id):
            return
        self._check_holder(tuner_id, trial.trial_id)
        self._check_hyperparameters(trial)
        # Keras Tuner copies the caller's hyperparameters onto the trial: keep the chief's own.
        trial.hyperparameters = self.trials[trial.trial_id].hyperparameters
        holder = self.holder(trial.trial_id)
        self.finished_by[trial.trial_id] = holder  # before end_trial, so that its save records it
        self.end_trial(trial)
        if not self._ended(trial.trial_id):  # sent for another attempt
            self.finished_by.pop(trial.trial_id)
        else:
            ended = self.trials[trial.trial_id]
            self.pruning.end(trial.trial_id, ended.score, ended.status == Status.COMPLETED)
        log.info("trial %s ended by %s: %s score=%s", trial.trial_id, holder, self.trials[trial.trial_id].status,
                 self.trials[trial.trial_id].score)
        self.save()  # Keras Tuner saves before removing the trial from ongoing_trials

    def _check_hyperparameters(self, trial) -> None:
        """The values a tuner reports must be in the space and be those it was handed."""
        sent, handed = trial.hyperparameters.values, self.trials[trial.trial_id].hyperparameters.values
        space = getattr(self, "search_space", None)
        outside = space.violation(ss.user_values(sent)) if space is not None else None
        if outside:
            raise ForgedTrial(f"trial {trial.trial_id}: refused, {outside}")
        differing = sorted(k for k in {*sent, *handed} if sent.get(k) != handed.get(k))
        if differing:
            name = differing[0]
            raise ForgedTrial(f"trial {trial.trial_id}: refused, {name} was handed out as {handed.get(name)!r}, "
                              f"reported as {sent.get(name)!r}")

    # -- handing out trials -----------------------------------------------------------------------

    @synchronized
    def create_trial(self, tuner_id):
        self.touch(tuner_id)
        if tuner_id in self.ongoing_trials:  # a restarted worker gets its trial back
            return self.ongoing_trials[tuner_id]
        if self.abort_reason or self.deadline_passed():
            self.deadline_hit = self.deadline_hit or (not self.abort_reason and self._work_left())
            return self._stop(tuner_id)
        trial = super().create_trial(tuner_id)
        if trial.status == Status.RUNNING:
            log.info("trial %s -> %s %s", trial.trial_id, tuner_id, ss.user_values(trial.hyperparameters.values))
        elif trial.status == Status.STOPPED:
            if self.ongoing_trials and self._standby_wanted(tuner_id):  # one of them may come back
                self.tuner_ids.add(tuner_id)
                return trial_module.Trial(self.get_space(), status=Status.IDLE)
            self._stop_issued = True
        return trial

    def _standby_wanted(self, tuner_id) -> bool:
        """Whether this worker is one of the few kept waiting at the tail of the search."""
        if self.standby_tuners is None:
            return True
        others_waiting = {t for t in self.tuner_ids if t not in self.ongoing_trials and t != tuner_id}
        return len(others_waiting) < self.standby_tuners

    def _stop(self, tuner_id):
        self.tuner_ids.discard(tuner_id)
        self._stop_issued = True
        return trial_module.Trial(self.get_space(), status=Status.STOPPED)

    def _work_left(self) -> bool:
        return bool(self._retry_queue) or not self.max_trials or len(self.trials) < self.max_trials

    def deadline_passed(self) -> bool:
        return self.deadline_seconds is not None and time.time() >= self.started_at + self.deadline_seconds

    def _check_consecutive_failures(self):
        # Keras Tuner raises from inside end_trial, which would fail the worker's RPC and skip
        # saving the trial; stop the search instead and let the chief report why.
        try:
            super()._check_consecutive_failures()
        except RuntimeError as exc:
            self.abort_reason = str(exc).splitlines()[0]
            log.error("stopping the search: %s", self.abort_reason)

    # -- leases -----------------------------------------------------------------------------------

    @synchronized
    def expire_leases(self) -> list[str]:
        """Hand the trials of tuners silent for longer than the lease to others; returns the lost ids."""
        now, lost = time.monotonic(), []
        for tuner_id in sorted(self.tuner_ids | set(self.ongoing_trials)):
            if now - self._last_seen.setdefault(tuner_id, now) <= self.lease_seconds:
                continue
            lost.append(tuner_id)
            self.tuner_ids.discard(tuner_id)
            if tuner_id not in self.lost_tuners:
                self.lost_tuners.append(tuner_id)
            trial = self.ongoing_trials.pop(tuner_id, None)
            if trial is None:
                log.warning("tuner %s silent for %.0fs: lost (it held no trial)", tuner_id, now - self._last_seen[tuner_id])
                continue
            if trial.trial_id in self.pruning.pruned and self._finish_pruned(trial):
                log.warning("tuner %s lost; trial %s was pruned: ended at its best epoch", tuner_id, trial.trial_id)
                continue
            count = self.handoffs[trial.trial_id] = self.handoffs.get(trial.trial_id, 0) + 1
            if count > self.max_handoffs:
                trial.status = Status.FAILED
                trial.message = f"lost its tuner {count} times (last {tuner_id}); not handed out again"
                self.end_order.append(trial.trial_id)
                self._save_trial(trial)
                log.warning("tuner %s lost; trial %s failed: %s", tuner_id, trial.trial_id, trial.message)
            else:
                self._retry_queue.append(trial.trial_id)  # create_trial serves this queue first
                log.warning("tuner %s lost; trial %s goes to the next worker", tuner_id, trial.trial_id)
        if lost:
            self.save()
        return lost

    def _finish_pruned(self, trial) -> bool:
        """End a pruned trial whose tuner was lost at the chief, scored with its best reported
        epoch: it is finished, there is nothing to hand over."""
        history = trial.metrics.get_history(self.pruning.metric) if trial.metrics.exists(self.pruning.metric) else []
        if not history:
            return False
        best = min(history, key=lambda o: o.mean() if self.objective.direction == "min" else -o.mean())
        name = self.objective.name
        if not trial.metrics.exists(name):
            trial.metrics.register(name, direction=self.objective.direction)
        trial.metrics.update(name, best.mean(), step=best.step)
        trial.status = Status.COMPLETED
        self.score_trial(trial)
        self.end_order.append(trial.trial_id)
        self._save_trial(trial)
        self.pruning.end(trial.trial_id, trial.score, True)
        return True

    @synchronized
    def finished(self) -> bool:
        if self.ongoing_trials or self.tuner_ids:
            return False
        if self.abort_reason or self._stop_issued or not self._work_left():
            return True
        if self.deadline_passed():
            self.deadline_hit = True
            return True
        return False

    # -- persistence ------------------------------------------------------------------------------

    def save(self):
        # Keras Tuner writes in place: a chief killed mid-write would leave a state it cannot reload.
        storage.write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        storage.write_text(storage.join(self._get_trial_dir(trial.trial_id), "trial.json"), json.dumps(trial.get_state()))

    def get_state(self):
        state = super().get_state()
        state["leases"] = {
            "started_at": self.started_at,
            "lost_tuners": self.lost_tuners,
            "handoffs": self.handoffs,
            "finished_by": self.finished_by,
            "abort_reason": self.abort_reason,
        }
        state["pruning"] = {"rule": self.pruning.rule, "pruned": self.pruning.pruned}
        state["warm_start"] = {"record": self.warm_start, "seeded": self.seeded}
        return state

    def set_state(self, state):
        super().set_state(state)
        self._persisted_ongoing = dict(state["ongoing_trials"])
        leases = state.get("leases", {})
        self.started_at = leases.get("started_at", self.started_at)
        self.lost_tuners = list(leases.get("lost_tuners", []))
        self.handoffs = dict(leases.get("handoffs", {}))
        self.finished_by = dict(leases.get("finished_by", {}))
        self.abort_reason = leases.get("abort_reason")
        self._persisted_pruned = dict((state.get("pruning") or {}).get("pruned") or {})
        warm = state.get("warm_start") or {}
        self.warm_start = warm.get("record")
        self.set_seeded(list(warm.get("seeded") or []))

    def set_seeded(self, seeded: list[str]) -> None:
        """The trials of a previous run that seed this search (trainer.tuning.warm_start), seeded
        now or reloaded: trials of the oracle that never count against max_trials (the search
        still runs its own), nor in this run's top-N."""
        self.max_trials += len(seeded) - len(self.seeded)
        self.seeded = list(seeded)

    def reload(self):
        super().reload()  # Keras Tuner re-queues every ongoing trial; undo that
        now = time.monotonic()
        for tuner_id, trial_id in self._persisted_ongoing.items():
            if trial_id in self._retry_queue:
                self._retry_queue.remove(trial_id)
            if self._ended(trial_id):  # ended, but the chief died before saving that
                continue
            self.ongoing_trials[tuner_id] = self.trials[trial_id]
            self.tuner_ids.add(tuner_id)
            self._last_seen[tuner_id] = now  # a fresh lease: its worker may be waiting for us
        # Trials saved as running but neither held, queued nor ended: the chief died inside
        # create_trial before its answer reached the worker.
        held = {t.trial_id for t in self.ongoing_trials.values()}
        for trial_id, trial in sorted(self.trials.items()):
            if trial.status == Status.RUNNING and trial_id not in held and trial_id not in self._retry_queue \
                    and not self._ended(trial_id):
                self._retry_queue.append(trial_id)
        # Pruning state: every reported epoch is on its trial, every decision in the state.
        own = [self.trials[t] for t in sorted(self.trials, key=_trial_order) if t not in self.seeded]
        self.pruning = Pruning.rebuild(self.pruning.rule, self.pruning.objective, self.pruning.direction, own,
                                       self._persisted_pruned)
        log.info("reloaded: %d trials, %d running (%s), %d queued", len(self.trials), len(self.ongoing_trials),
                 ", ".join(f"{t}:{tr.trial_id}" for t, tr in self.ongoing_trials.items()) or "-", len(self._retry_queue))


def _trial_order(trial_id: str) -> tuple:
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


_BASES = {
    "random": kt.oracles.RandomSearchOracle,
    "bayesian": kt.oracles.BayesianOptimizationOracle,
    "hyperband": kt.oracles.HyperbandOracle,
    "grid": kt.oracles.GridSearchOracle,
    "tpe": TPEOracle,
    "gp": GPOracle,
}
_LEASED = {name: type(f"Leased{base.__name__}", (LeaseMixin, base), {}) for name, base in _BASES.items()}


def make_oracle(settings: Settings, lease_seconds: float | None = None, deadline_seconds: float | None = None,
                max_handoffs: int = 2, standby_tuners: int | None = None, hyperparameters=None):
    """The algorithm's oracle over the search space (`hyperparameters`, default: the
    declarative space of the settings). With `lease_seconds` (the chief) it is a leased
    oracle; without (a worker's local copy) the plain one, used only for its objective."""
    if hyperparameters is None:
        hyperparameters = ss.to_hyperparameters(settings.search_space)
    kwargs = dict(
        objective=kt.Objective(settings.objective, settings.direction),
        hyperparameters=hyperparameters,
        tune_new_entries=False,  # the space is data: nothing the model asks for is added to it
        # hashed, not the run seed itself: Keras Tuner steps its seed by one per value drawn,
        # so runs with nearby seeds would replay each other's points one value apart
        seed=seeds.derive(settings.args.seed, settings.args.algorithm),
    )
    hyperband = settings.args.algorithm == "hyperband"
    if hyperband:  # no max_trials argument: it caps its brackets by the attribute, set below
        kwargs["max_epochs"] = settings.args.epochs
    else:
        kwargs["max_trials"] = settings.args.max_trials
    if lease_seconds is None:
        oracle = _BASES[settings.args.algorithm](**kwargs)
    else:
        oracle = _LEASED[settings.args.algorithm](lease_seconds=lease_seconds, deadline_seconds=deadline_seconds,
                                                  max_handoffs=max_handoffs, standby_tuners=standby_tuners, **kwargs)
    if hyperband:
        oracle.max_trials = settings.args.max_trials
    # what reported hyperparameters are checked against: the declarative space (every
    # parameter present), or a user model's Keras Tuner space (inactive conditional ones absent)
    oracle.search_space = ss.KerasSpace(hyperparameters) if settings.user_model else settings.search_space
    if lease_seconds is not None:
        oracle.pruning = Pruning(settings.early_stopping, settings.objective, settings.direction)
    return oracle
