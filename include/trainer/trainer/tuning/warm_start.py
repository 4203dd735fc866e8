"""Warm start: the previous run's completed trials seed a new search, on the chief.

`--warm-start-from` names the previous run's root (the Airflow side finds it under the storage
root: never a path from a run's conf). When its search and feature spec are compatible
(`tune_contract.warm_start`), its completed trials whose values are points of the new space go
into the oracle as completed Keras Tuner trials (ids `w00`, `w01`, …) before the first trial is
handed out: what KT bayesian fits its GP on and what the tpe oracle rebuilds its study from
(KT random only avoids repeating them). They do not count against `--max-trials` (the oracle's
cap is raised by their number) and are not this run's trials: the chief's result lists them
only as a count (`warm_start`), so the top-N is chosen among trials trained on this run's data.
"""
from __future__ import annotations

import json
import logging
import math

from tune_contract import layout
from tune_contract import warm_start as rule

from trainer import storage

log = logging.getLogger("trainer.tuning.warm_start")
SEED_PREFIX = "w"


def _read(uri: str):
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def seed(oracle, settings, previous_root: str) -> dict:
    """Seed `oracle` (a fresh one: nothing handed out yet) from `previous_root`; returns the
    record of what was done or why not ({from, trials, left_out, note})."""
    run_id = previous_root.rstrip("/").rsplit("/", 1)[-1]
    search = _read(storage.join(previous_root, layout.TUNING_DIR, layout.SEARCH_FILE))
    result = _read(layout.oracle_result(previous_root))
    if search is None or result is None:
        return _not(run_id, f"run {run_id} has no finished search under {previous_root}")
    problem = rule.search_problem(search, settings.identity())
    if problem is None and not settings.function:
        problem = rule.spec_problem(_read(storage.join(previous_root, layout.DATA_DIR, "feature_spec.json")),
                                    _read(storage.join(settings.run_root, layout.DATA_DIR, "feature_spec.json")))
    if problem:
        return _not(run_id, f"run {run_id}: {problem}")

    from keras_tuner.src.engine import trial as trial_module

    seeded, left_out = [], 0
    for previous in result.get("trials") or []:
        value, values = previous.get("objective"), previous.get("hyperparameters") or {}
        if not isinstance(value, (int, float)) or not math.isfinite(value) or settings.space.violation(values):
            left_out += 1
            continue
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
    oracle.seeded = seeded
    oracle.max_trials = settings.max_trials + len(seeded)  # they do not count against max_trials
    record = {"from": run_id, "trials": len(seeded), "left_out": left_out,
              "note": rule.note(run_id, len(seeded), left_out)}
    oracle.warm_start = record
    oracle.save()
    log.info("%s", record["note"])
    return record


def _not(run_id: str, why: str) -> dict:
    log.info("no warm start: %s", why)
    return {"from": run_id, "trials": 0, "note": rule.note(run_id, why_not=why)}

