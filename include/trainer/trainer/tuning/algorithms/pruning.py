"""Early stopping across tuners: the chief's one place that decides whether a trial stops.

Tuners report each epoch's objective on their lease heartbeat (`rpc`); the chief's oracle
passes it here. This module mirrors every trial's intermediate values into its own in-memory
Optuna study and asks an Optuna pruner (median, or asynchronous successive halving) whether
the trial should stop. It knows nothing of the sampler that chose the trial's values, so it
works the same under random, bayesian or tpe.

Its state is rebuilt, never persisted on its own: the intermediate values are kept on the Keras
Tuner trials themselves (metric `EPOCH_METRIC_PREFIX + objective`, step = epochs done, saved in
`trial_{id}/trial.json` by the chief), and the decisions taken are in the oracle's state; a
restarted chief replays them in trial order (`rebuild`).

Steps are epochs done (1 after the first epoch), of the trial's first execution only (with
several executions per trial, later ones repeat the same epochs).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger("trainer.tuning.algorithms.pruning")
EPOCH_METRIC_PREFIX = "epochs/"  # the trial metric holding the objective of every epoch, by step
ASHA_REDUCTION_FACTOR = 3
ASHA_MIN_RESOURCE = 1  # epochs before the first rung
MEDIAN_STARTUP_TRIALS = 3  # completed trials before the median rule prunes anything


@dataclass(frozen=True)
class Decision:
    prune: bool
    reason: str


KEEP = Decision(False, "")


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _pruner(rule: str):
    optuna = _optuna()
    if rule == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=0)
    if rule == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=ASHA_MIN_RESOURCE,
                                                      reduction_factor=ASHA_REDUCTION_FACTOR)
    raise ValueError(f"no pruner for rule {rule!r}")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class Pruning:
    """The pruning state of one search. `rule` "none" decides nothing and keeps nothing."""

    def __init__(self, rule: str, objective: str, direction: str):
        self.rule, self.objective, self.direction = rule, objective, direction
        self.pruned: dict[str, str] = {}  # trial id -> reason
        self._values: dict[str, dict[int, float]] = {}  # trial id -> {step: value}, as reported
        self._trials: dict[str, object] = {}  # trial id -> its optuna.Trial
        self._ended: set[str] = set()
        self._study = None
        if self.active:
            optuna = _optuna()
            self._study = optuna.create_study(
                direction="minimize" if direction == "min" else "maximize", pruner=_pruner(rule),
                sampler=optuna.samplers.RandomSampler(seed=0))  # never asked to sample anything

    @property
    def active(self) -> bool:
        return self.rule != "none"

    @property
    def metric(self) -> str:
        return EPOCH_METRIC_PREFIX + self.objective

    def values(self, trial_id: str) -> dict[int, float]:
        return dict(self._values.get(trial_id, {}))

    # -- the decision -----------------------------------------------------------------------------

    def report(self, trial_id: str, step: int, value: float) -> Decision:
        """Record `value` after `step` epochs of `trial_id` and decide. A step already reported
        (a heartbeat repeating it, a resumed trial re-sending its epochs) keeps its first value;
        the decision is asked again. A trial pruned once stays pruned."""
        if trial_id in self.pruned:
            return Decision(True, self.pruned[trial_id])
        if not self.active or trial_id in self._ended or not math.isfinite(value) or step < 1:
            return KEEP  # a non-finite value fails the trial on the tuner (diverged), not here
        steps = self._values.setdefault(trial_id, {})
        trial = self._trial(trial_id)
        if step not in steps:
            steps[step] = float(value)
            trial.report(float(value), step)
        if step != max(steps):
            return KEEP  # an old epoch re-sent: the latest one was already judged
        if not trial.should_prune():
            return KEEP
        reason = self._reason(trial_id, step, steps[step])
        self.pruned[trial_id] = reason
        log.info("trial %s pruned: %s", trial_id, reason)
        return Decision(True, reason)

    def end(self, trial_id: str, score: float | None, completed: bool) -> None:
        """The trial ended: completed trials (pruned ones included) become what later trials are
        compared with; failed ones drop out."""
        if not self.active or trial_id in self._ended:
            return
        self._ended.add(trial_id)
        optuna = _optuna()
        trial = self._trial(trial_id)
        if trial_id in self.pruned:
            self._study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        elif completed and score is not None and math.isfinite(score):
            self._study.tell(trial, float(score))
        else:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _trial(self, trial_id: str):
        if trial_id not in self._trials:
            self._trials[trial_id] = self._study.ask()
        return self._trials[trial_id]

    def _reason(self, trial_id: str, step: int, value: float) -> str:
        """The decision in words, with the figures it rests on (computed from the reports)."""
        name, sign = self.objective, (1 if self.direction == "min" else -1)
        others = [v[step] for t, v in self._values.items() if t != trial_id and step in v]
        if self.rule == "median":
            done = [v[step] for t, v in self._values.items()
                    if t != trial_id and t in self._ended and t not in self.pruned and step in v]
            pool = done or others
            if pool:
                median = sorted(pool)[len(pool) // 2]
                return (f"median rule after epoch {step}: {name} {_fmt(value)} is worse than the median "
                        f"{_fmt(median)} of {len(pool)} completed trial(s) at that epoch")
            return f"median rule after epoch {step}: {name} {_fmt(value)} is worse than the median"
        ranked = sorted([value, *others], key=lambda v: sign * v)
        keep = max(len(ranked) // ASHA_REDUCTION_FACTOR, 1)
        cutoff = ranked[keep - 1]
        return (f"asha rung at epoch {step}: {name} {_fmt(value)} is not in the best 1/{ASHA_REDUCTION_FACTOR} "
                f"of the {len(ranked)} trial(s) that reached it (cut-off {_fmt(cutoff)})")

    # -- a restarted chief --------------------------------------------------------------------------

    @classmethod
    def rebuild(cls, rule: str, objective: str, direction: str, trials, pruned: dict[str, str]) -> Pruning:
        """The state of a search from its Keras Tuner trials (in trial order) and the decisions
        taken (`pruned`): every reported epoch replayed, ended trials told their end."""
        pruning = cls(rule, objective, direction)
        pruning.pruned = dict(pruned)
        if not pruning.active:
            return pruning
        for trial in trials:
            trial_id = trial.trial_id
            history = trial.metrics.get_history(pruning.metric) if trial.metrics.exists(pruning.metric) else []
            steps = pruning._values.setdefault(trial_id, {})
            optuna_trial = pruning._trial(trial_id)
            for observation in history:
                step, value = int(observation.step), float(observation.mean())
                if step not in steps and math.isfinite(value):
                    steps[step] = value
                    optuna_trial.report(value, step)
                    if trial_id not in pruning.pruned:
                        optuna_trial.should_prune()  # ASHA records the rungs reached as it judges
            if trial.status in ("COMPLETED", "FAILED", "INVALID", "STOPPED"):
                pruning.end(trial_id, trial.score, trial.status == "COMPLETED")
        return pruning
