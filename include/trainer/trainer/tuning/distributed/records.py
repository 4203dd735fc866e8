"""A trial as the workflow sees it (docs/contracts.md), and the per-worker facts behind it.

Keras Tuner's protocol carries metrics but not who ran a trial, for how long, or from which
epoch it resumed. The worker that finishes a trial writes those facts next to it
(`trial_{id}/outcome-{tuner_id}.json`) before reporting the end; the chief reads the file
of the tuner whose end it accepted.
"""
from __future__ import annotations

import json
import math

from trainer import storage
from trainer.tuning.search_space import user_values


def outcome_path(tuning_dir: str, trial_id: str, tuner_id: str) -> str:
    return storage.join(tuning_dir, f"trial_{trial_id}", f"outcome-{tuner_id}.json")


def write_outcome(tuning_dir: str, trial_id: str, tuner_id: str, outcome: dict) -> None:
    storage.write_text(outcome_path(tuning_dir, trial_id, tuner_id), json.dumps(outcome, sort_keys=True))


def read_outcome(tuning_dir: str, trial_id: str, tuner_id: str | None) -> dict:
    if not tuner_id:
        return {}
    path = outcome_path(tuning_dir, trial_id, tuner_id)
    return json.loads(storage.read_text(path)) if storage.exists(path) else {}


def trial_record(trial, tuner_id: str | None, outcome: dict) -> dict:
    """`pruned` (the chief's reason) is set on a trial early stopping ended; its status stays
    COMPLETED and its objective is its best epoch. `failure`: why a trial failed (diverged)."""
    score = trial.score
    return {
        "trial_id": trial.trial_id,
        "hyperparameters": user_values(trial.hyperparameters.values),
        "objective": None if score is None or not math.isfinite(score) else float(score),
        "status": trial.status,
        "epochs": outcome.get("epochs"),
        "seconds": outcome.get("seconds"),
        "tuner_id": tuner_id,
        "resumed_from_epoch": outcome.get("resumed_from_epoch", 0),
        # Unix seconds of the run that finished it (None in records written before they were kept).
        "started_at": outcome.get("started_at"),
        "ended_at": outcome.get("ended_at"),
        **({"pruned": outcome["pruned"]} if outcome.get("pruned") else {}),
        **({"failure": outcome["failure"]} if outcome.get("failure") else {}),
    }


def rank(records: list[dict], direction: str) -> list[dict]:
    """Best first; ties broken by trial id so the ranking is reproducible."""
    sign = -1.0 if direction == "max" else 1.0
    return sorted(records, key=lambda r: (sign * r["objective"], r["trial_id"]))
