"""Warm start: the previous run's completed trials seed a new search, on the chief.

`--warm-start-from` names the previous run's root (the Airflow side finds it under the storage
root: never a path from a run's conf). When its search and feature spec are compatible
(`tune_contract.warm_start`), its completed trials whose values are points of the new space go
into the oracle as completed Keras Tuner trials (ids `w00`, `w01`, …) before the first trial is
handed out: what KT bayesian fits its GP on and what the tpe oracle rebuilds its study from
(KT random only avoids repeating them). They do not count against `--max-trials` (the oracle's
cap is raised by their number) and are not this run's trials: the chief's result lists them
only as a count (`warm_start`), so the top-N is chosen among trials trained on this run's data.

A user model's space is what it declares (known once it is built on the prepared data), so
every chief records the space it samples (`tuning/space.json`, by parameter kind) and the next
run's chief compares the two. A warm start is an optimisation: whatever the previous run's
files hold (missing, unreadable, another format), the chief starts cold and says why.
"""
from __future__ import annotations

import json
import logging
import math

from tune_contract import layout
from tune_contract import warm_start as rule

from trainer import storage
from trainer.tuning import search_space as ss

log = logging.getLogger("trainer.tuning.warm_start")
SEED_PREFIX = "w"


def _read(uri: str):
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def _space_file(run_root: str) -> str:
    return storage.join(run_root, layout.TUNING_DIR, layout.SPACE_FILE)


def record_space(oracle, settings) -> None:
    """Record the space this chief samples, for the next run's warm start."""
    storage.write_text(_space_file(settings.args.run_root),
                       json.dumps({"kinds": ss.keras_kinds(oracle.hyperparameters)}, indent=2, sort_keys=True))


def seed(oracle, settings, previous_root: str) -> dict:
    """Seed `oracle` (a fresh one: nothing handed out yet) from `previous_root`; returns the
    record of what was done or why not ({from, trials, left_out, note})."""
    run_id = previous_root.rstrip("/").rsplit("/", 1)[-1]
    try:
        seeds, left_out = _compatible_trials(oracle, settings, previous_root, run_id)
    except _NotCompatible as exc:
        return _not(run_id, str(exc))
    except Exception as exc:  # an unreadable or unexpected record: never a reason to stop the search
        return _not(run_id, f"run {run_id}: its records could not be read ({type(exc).__name__}: {exc})"
                    .splitlines()[0])

    from keras_tuner.src.engine import trial as trial_module

    seeded = []
    for value, values in seeds:
        hps = oracle.get_space()
        for name, v in values.items():
            hps.values[name] = v
        trial_id = f"{SEED_PREFIX}{len(seeded):02d}"
        trial = trial_module.Trial(hps, trial_id=trial_id, status=trial_module.TrialStatus.COMPLETED)
        trial.metrics.register(settings.objective, direction=settings.direction)
        trial.metrics.update(settings.objective, float(value), step=0)
        trial.score, trial.best_step = float(value), 0
        oracle.trials[trial_id] = trial
        if hasattr(oracle, "_record_values"):
            oracle._record_values(trial)  # KT random never proposes a seeded point again
        oracle._save_trial(trial)
        seeded.append(trial_id)
    oracle.set_seeded(seeded)
    record = {"from": run_id, "trials": len(seeded), "left_out": left_out,
              "note": rule.note(run_id, len(seeded), left_out)}
    oracle.warm_start = record
    oracle.save()
    log.info("%s", record["note"])
    return record


class _NotCompatible(Exception):
    pass


def _compatible_trials(oracle, settings, previous_root: str, run_id: str) -> tuple[list[tuple[float, dict]], int]:
    """The previous run's trials that may seed this search ((objective, values) each) and how many
    were left out; _NotCompatible with the reason when none may. Reads only: the oracle is
    changed by the caller once everything was read."""
    search = _read(storage.join(previous_root, layout.TUNING_DIR, layout.SEARCH_FILE))
    result = _read(layout.oracle_result(previous_root))
    if search is None or result is None:
        raise _NotCompatible(f"run {run_id} has no finished search under {previous_root}")
    problem = rule.search_problem(search, settings.identity())
    if problem is None and rule.declared_by_model(settings.identity()):
        recorded = _read(_space_file(previous_root))
        if not isinstance(recorded, dict) or not isinstance(recorded.get("kinds"), dict):
            raise _NotCompatible(f"run {run_id} records no search space (made before it was recorded)")
        problem = rule.kinds_problem(recorded["kinds"], ss.keras_kinds(oracle.hyperparameters))
    if problem is None and not settings.args.objective_function:
        problem = rule.spec_problem(_read(storage.join(previous_root, layout.DATA_DIR, "feature_spec.json")),
                                    _read(storage.join(settings.args.run_root, layout.DATA_DIR, "feature_spec.json")))
    if problem:
        raise _NotCompatible(f"run {run_id}: {problem}")
    # the declarative space, or a user model's Keras Tuner space (make_oracle sets it)
    space = getattr(oracle, "search_space", None) or settings.search_space
    seeds, left_out = [], 0
    for previous in result.get("trials") or []:
        value, values = previous.get("objective"), previous.get("hyperparameters") or {}
        if not isinstance(value, (int, float)) or not math.isfinite(value) or not isinstance(values, dict) \
                or space.violation(values):
            left_out += 1
            continue
        seeds.append((float(value), values))
    return seeds, left_out


def _not(run_id: str, why: str) -> dict:
    log.info("no warm start: %s", why)
    return {"from": run_id, "trials": 0, "note": rule.note(run_id, why_not=why)}
