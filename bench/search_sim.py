"""Search quality in-process: the chief's own oracle classes under simulated asynchronous workers.

`simulate` runs one search: `PARALLEL` workers, each evaluation lasting a random time (seeded),
the worker that finishes first reports and asks for the next point, until `budget`
evaluations. The methods all speak `ask(worker) -> (handle, values) | None` and
`tell(worker, handle, value)`:

- `KerasTunerMethod`: `trainer.tuning.distributed.oracles.make_oracle` with a lease, i.e. exactly the
  leased oracle the chief serves (create_trial / update_trial_from / end_trial_from, its
  state files in a temporary directory): ours (`gp`, the default, and `tpe`), Keras Tuner `random` and `bayesian`;
- `OptunaDefaults`: Optuna's `TPESampler` with its defaults, ask/tell;
- `skopt_gp`: scikit-optimize's GP `Optimizer`, `ask(4)`/`tell` in synchronous rounds of 4
  (its parallel example; it has no asynchronous mode).

Run with the trainer venv (PYTHONPATH include/trainer).
"""
from __future__ import annotations

import heapq
import math
import random
import shutil
import tempfile
import time

from trainer.tuning.algorithms import benchmarks
from trainer.tuning.distributed.oracles import make_oracle
from trainer.tuning.algorithms.seeds import derive
from trainer.tuning.settings import from_args
from tune_contract.steps import SearchArgs

PARALLEL = 4
# problem -> (benchmark function, evaluations, global minimum)
PROBLEMS = {
    "branin16": ("branin", 16, benchmarks.BRANIN_MINIMUM),
    "branin32": ("branin", 32, benchmarks.BRANIN_MINIMUM),
    "hartmann6_48": ("hartmann6", 48, benchmarks.HARTMANN6_MINIMUM),
}


def space(function: str) -> list[dict]:
    return benchmarks.default_space(function)


class KerasTunerMethod:
    """The chief's leased oracle for `algorithm`, driven as the chief's gRPC servicer drives it."""

    def __init__(self, algorithm: str, function: str, budget: int, seed: int, **oracle_options):
        self.workdir = tempfile.mkdtemp(prefix=f"bench-sim-{algorithm}-")
        settings = from_args(SearchArgs(run_root=self.workdir, algorithm=algorithm, search_space=space(function),
                                        max_trials=budget, executions_per_trial=1, epochs=1, seed=seed,
                                        objective_function=function, early_stopping="off"))
        self.oracle = make_oracle(settings, lease_seconds=1e9)
        for key, value in oracle_options.items():
            setattr(self.oracle, key, value)
        self.oracle._set_project_dir(self.workdir, "tuning")
        self.oracle.save()

    def ask(self, worker: str):
        trial = self.oracle.create_trial(worker)
        if trial.status != "RUNNING":
            return None
        return trial, dict(trial.hyperparameters.values)

    def tell(self, worker: str, trial, value: float) -> None:
        self.oracle.update_trial_from(worker, trial.trial_id, {"value": value})
        trial.status = "COMPLETED"
        self.oracle.end_trial_from(worker, trial)

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class OptunaDefaults:
    """Optuna's TPESampler as shipped (5.0: constant liar on), ask/tell."""

    def __init__(self, function: str, budget: int, seed: int):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.params = space(function)
        self.study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))

    def ask(self, worker: str):
        trial = self.study.ask()
        return trial, {p["name"]: trial.suggest_float(p["name"], p["min"], p["max"]) for p in self.params}

    def tell(self, worker: str, trial, value: float) -> None:
        self.study.tell(trial, value)

    def close(self) -> None:
        pass


def simulate(method, function: str, budget: int, seed: int) -> list[float]:
    """The values of `budget` evaluations, in the order they ended, PARALLEL in flight."""
    durations = random.Random(derive(seed, "bench/durations"))
    running: list[tuple[float, int, str, object, dict]] = []
    asked, order, values = 0, 0, []

    def start(worker: str, now: float) -> None:
        nonlocal asked, order
        got = method.ask(worker) if asked < budget else None
        if got is None:
            return
        asked, order = asked + 1, order + 1
        heapq.heappush(running, (now + durations.uniform(0.5, 1.5), order, worker, got[0], got[1]))

    for i in range(PARALLEL):
        start(f"tuner-{i}", 0.0)
    while running:
        now, _, worker, handle, point = heapq.heappop(running)
        value = benchmarks.evaluate(function, point, 0)
        method.tell(worker, handle, value)
        values.append(value)
        start(worker, now)
    return values


def skopt_gp(function: str, budget: int, seed: int) -> list[float]:
    """scikit-optimize's parallel example: rounds of ask(4), then tell."""
    from skopt import Optimizer
    from skopt.space import Real

    params = space(function)
    optimizer = Optimizer(dimensions=[Real(p["min"], p["max"]) for p in params], random_state=seed,
                          base_estimator="gp")
    for _ in range(math.ceil(budget / PARALLEL)):
        points = optimizer.ask(n_points=PARALLEL)
        optimizer.tell(points, [benchmarks.evaluate(function, dict(zip([p["name"] for p in params], x)), 0)
                                for x in points])
    return list(optimizer.yi[:budget])


def run(method_name: str, function: str, budget: int, seed: int) -> dict:
    """One search; returns its best value and how long the method took (its own compute)."""
    started = time.process_time()
    if method_name == "skopt_gp":
        values = skopt_gp(function, budget, seed)
    else:
        method = OptunaDefaults(function, budget, seed) if method_name == "optuna_tpe" else \
            KerasTunerMethod(METHODS[method_name], function, budget, seed)
        try:
            values = simulate(method, function, budget, seed)
        finally:
            method.close()
    assert len(values) == budget, (method_name, len(values))
    return {"seed": seed, "best": min(values), "cpu_seconds": round(time.process_time() - started, 2)}


# method name -> our algorithm behind the chief's oracle (the others are run directly)
METHODS = {"ours": "gp", "ours_tpe": "tpe", "kt_random": "random", "kt_bayesian": "bayesian"}
BASELINES = ("skopt_gp", "optuna_tpe")
