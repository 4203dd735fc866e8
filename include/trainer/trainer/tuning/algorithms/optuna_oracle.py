"""The `tpe` algorithm: a Keras Tuner `Oracle` whose suggestions come from Optuna's TPE.

- A space-filling start: until `n_startup` trials (2d+1 by default, d the number of tuned
  hyperparameters) have completed, trials are the next points of a scrambled Sobol sequence
  (2d+1 plus those started while waiting for the results, e.g. 8 on Branin with 4 workers),
  instead of Keras Tuner's 3·d independent random points (holes and clusters at 16 evaluations).
- Then Optuna's `TPESampler` (multivariate, `group=True` for conditional hyperparameters,
  `constant_liar=True`): trials still running count as 'liars' with a bad value, so four
  workers asking at once are not all sent to the same spot.
- The Optuna study is derived data, never persisted: it is rebuilt from `self.trials` (the
  oracle's own trial files) whenever it is missing, after a chief restart (`set_state`)
  for one, and every call brings it up to date with them (`_sync`). A completed trial with a
  score becomes a COMPLETE trial, a trial not yet ended a RUNNING one (a liar again). Trials
  placed in `self.trials` by other code (a warm start) join the same way.
- Each suggestion uses a sampler seeded from (run seed, trial number), so a search is a
  function of its seed and its results, whether or not the chief restarted in between.

Keras Tuner's hyperparameters map to Optuna distributions (`_dimension`): Float/Int by range
(log or linear), anything with a step or an ordered Choice by the index of its value on the
grid (so values are Keras Tuner's exact grid points), an unordered Choice or a Boolean as
categorical, Fixed not at all. Conditional hyperparameters are asked only when active.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import keras_tuner as kt
import optuna
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine.hyperparameters import hp_types
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from scipy.stats import qmc

from trainer.tuning.algorithms import seeds

Status = trial_module.TrialStatus
optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is the chief's own log
log = logging.getLogger("trainer.tuning.tpe")


def startup_points(dimensions: int) -> int:
    return 2 * dimensions + 1


@dataclass(frozen=True)
class Dimension:
    """One tuned hyperparameter as Optuna sees it; `encode`/`decode` convert its values."""
    distribution: BaseDistribution
    encode: Callable[[Any], Any]  # Keras Tuner value -> Optuna value
    decode: Callable[[Any], Any]  # Optuna value -> Keras Tuner value


def _grid(values: list) -> Dimension:
    """Ordered values by index: TPE models the order, the values stay the exact grid points."""
    def encode(value):
        return min(range(len(values)), key=lambda i: abs(values[i] - value))

    return Dimension(IntDistribution(0, len(values) - 1), encode, lambda i: values[int(i)])


def _dimension(hp) -> Dimension | None:
    """The Optuna distribution of a Keras Tuner hyperparameter (None for a Fixed one)."""
    if isinstance(hp, hp_types.Fixed):
        return None
    if isinstance(hp, hp_types.Boolean):
        return Dimension(CategoricalDistribution((False, True)), bool, bool)
    if isinstance(hp, hp_types.Choice):
        if hp.ordered:
            return _grid(list(hp.values))
        return Dimension(CategoricalDistribution(tuple(hp.values)), lambda v: v, lambda v: v)
    if hp.sampling == "reverse_log":  # no Optuna equivalent: tune Keras Tuner's own [0, 1] scale
        return Dimension(FloatDistribution(0.0, 1.0), hp.value_to_prob, hp.prob_to_value)
    if hp.step is not None:
        return _grid(list(hp.values))
    if isinstance(hp, hp_types.Int):
        return Dimension(IntDistribution(hp.min_value, hp.max_value, log=hp.sampling == "log"), int, int)
    return Dimension(FloatDistribution(hp.min_value, hp.max_value, log=hp.sampling == "log"), float, float)


def _suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution):
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)


class TPEOracle(kt.Oracle):
    n_ei_candidates = 24  # Optuna's default; candidates drawn from the good-points density per suggestion

    def __init__(self, objective=None, max_trials=None, hyperparameters=None, seed=None, n_startup: int | None = None,
                 **kwargs):
        super().__init__(objective=objective, max_trials=max_trials, hyperparameters=hyperparameters, seed=seed,
                         **kwargs)
        tuned = [hp for hp in self.hyperparameters.space if _dimension(hp) is not None]
        self.n_startup = startup_points(len(tuned)) if n_startup is None else n_startup
        self._study: optuna.Study | None = None
        self._numbers: dict[str, int] = {}  # Keras Tuner trial id -> Optuna trial number
        self._running: set[str] = set()  # trial ids RUNNING in the study

    # -- the study, derived from self.trials -----------------------------------------------------

    def _new_study(self) -> optuna.Study:
        self._numbers, self._running = {}, set()
        direction = "maximize" if self.objective.direction == "max" else "minimize"
        return optuna.create_study(direction=direction, sampler=self._sampler(0))

    def _sampler(self, number: int) -> optuna.samplers.TPESampler:
        with warnings.catch_warnings():  # group=True is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # n_startup_trials=1: the start is ours (Sobol, `_in_startup`); TPE takes over after it
            return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, n_startup_trials=1,
                                              n_ei_candidates=self.n_ei_candidates,
                                              seed=seeds.derive(self.seed, f"tpe/{number}"))

    def _encoded(self, values: dict) -> tuple[dict, dict]:
        """A trial's active tuned values as Optuna parameters and their distributions."""
        hps, params, distributions = kt.HyperParameters(), {}, {}
        hps.values = dict(values)
        for hp in self.hyperparameters.space:
            dim = _dimension(hp)
            if dim is not None and hp.name in values and hps._conditions_are_active(hp.conditions):
                params[hp.name], distributions[hp.name] = dim.encode(values[hp.name]), dim.distribution
        return params, distributions

    def _sync(self) -> optuna.Study:
        """Bring the study up to date with the oracle's trials (all of them after a restart):
        a completed trial with a score is COMPLETE, one not ended yet RUNNING (a liar)."""
        if self._study is None:
            self._study = self._new_study()
        study = self._study
        for trial_id, trial in sorted(self.trials.items()):
            completed = trial.status == Status.COMPLETED and trial.score is not None and math.isfinite(trial.score)
            ended = completed or trial_id in self.end_order or trial.status == Status.FAILED
            if trial_id not in self._numbers:
                if ended and not completed:
                    continue  # nothing to learn from a failed trial
                params, distributions = self._encoded(trial.hyperparameters.values)
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE if completed else TrialState.RUNNING,
                    value=trial.score if completed else None, params=params, distributions=distributions))
                self._numbers[trial_id] = len(study.get_trials(deepcopy=False)) - 1
                if not completed:
                    self._running.add(trial_id)
            elif trial_id in self._running and ended:
                self._running.discard(trial_id)
                if completed:
                    study.tell(self._numbers[trial_id], trial.score)
                else:
                    study.tell(self._numbers[trial_id], state=TrialState.FAIL)
        return study

    # -- Keras Tuner's Oracle interface ----------------------------------------------------------

    def populate_space(self, trial_id):
        study = self._sync()
        for attempt in range(self._max_collisions + 1):
            number = len(study.get_trials(deepcopy=False))
            if attempt == 0 and self._in_startup():
                study.enqueue_trial(self._startup_point(len(self.trials)), skip_if_exists=False)
            study.sampler = self._sampler(number)
            asked = study.ask()
            values = self._values(asked)
            if not self._duplicate(values):
                self._numbers[trial_id] = asked.number
                self._running.add(trial_id)
                return {"status": Status.RUNNING, "values": values}
            study.tell(asked, state=TrialState.FAIL)
        return {"status": Status.STOPPED, "values": None}  # a discrete space tried out

    def _in_startup(self) -> bool:
        """Until `n_startup` results are in: TPE fitted to 1-2 results while the rest of the
        start is still running did worse than more Sobol points (bench/RESULTS.md, 2026-11-29)."""
        return sum(t.status == Status.COMPLETED for t in self.trials.values()) < self.n_startup

    def _values(self, asked: optuna.Trial) -> dict:
        """The active hyperparameters' values, asking Optuna in declaration order (a parent
        before the hyperparameters its value activates)."""
        hps = kt.HyperParameters()
        for hp in self.hyperparameters.space:
            hps.merge([hp])
            if not hps.is_active(hp):
                continue
            dim = _dimension(hp)
            hps.values[hp.name] = hp.value if dim is None else dim.decode(_suggest(asked, hp.name, dim.distribution))
        return hps.values

    def _startup_point(self, index: int) -> dict:
        """Point `index` of the search's scrambled Sobol sequence, as Optuna parameter values."""
        tuned = [hp for hp in self.hyperparameters.space if _dimension(hp) is not None]
        sobol = qmc.Sobol(len(tuned), scramble=True, seed=seeds.derive(self.seed, "tpe/startup"))
        size = 2 ** max(1, math.ceil(math.log2(max(self.n_startup, index + 1))))
        point = sobol.random(size)[index]  # a power of two keeps Sobol's balance; the first n are used
        return {hp.name: _dimension(hp).encode(hp.prob_to_value(float(u))) for hp, u in zip(tuned, point)}

    def end_trial(self, trial):
        super().end_trial(trial)
        self._sync()  # tells Optuna the result (or the failure)

    def set_state(self, state):
        super().set_state(state)
        self._study = None  # rebuilt from the reloaded trials on first use
