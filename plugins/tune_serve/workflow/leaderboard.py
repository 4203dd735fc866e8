"""Top-N aggregation of the tuners' trials, and the choice of the model to ship."""
from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any


class NoCandidate(Exception):
    """Nothing to carry forward (no completed trial, or no blessed model)."""


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def merge_trials(tuner_results: Iterable[dict | None], oracle_result: dict | None) -> list[dict]:
    """Completed trials, one per trial id, from every tuner's XCom and the chief's records.

    The chief's records also hold trials whose tuner finished them and was then lost for
    good (its task failed, so it left no XCom); a tuner's own report wins when both exist.
    """
    trials: dict[str, dict] = {}
    for trial in (oracle_result or {}).get("trials", []):
        if _finite(trial.get("objective")):
            trials[str(trial["trial_id"])] = trial
    for result in tuner_results:
        for trial in (result or {}).get("trials", []):
            if _finite(trial.get("objective")):
                trials[str(trial["trial_id"])] = trial
    return list(trials.values())


def top_n(trials: list[dict], n: int, direction: str) -> list[dict]:
    """The n best distinct hyperparameter sets, ranked from 0; ties broken by trial id.

    A pruned trial (early stopping) is a measured, scored trial and may rank (its `pruned`
    reason travels with it); it seldom does, being scored after fewer epochs than the others.
    Only this run's trials are here: the chief's result leaves out the trials of a previous
    run that seeded the search (warm start).

    Hyperband runs one configuration as several trials (one per bracket round): only its
    best trial counts, so the same model is never trained twice.
    """
    sign = 1 if direction == "min" else -1
    ranked, seen = [], set()
    for t in sorted(trials, key=lambda t: (sign * t["objective"], str(t["trial_id"]))):
        key = json.dumps(t["hyperparameters"], sort_keys=True)
        if key not in seen:
            seen.add(key)
            ranked.append(t)
    if not ranked:
        raise NoCandidate("no trial completed: nothing to train")
    return [{"rank": rank, "trial_id": t["trial_id"], "objective": t["objective"],
             "hyperparameters": t["hyperparameters"], "tuner_id": t.get("tuner_id"),
             **({"pruned": t["pruned"]} if t.get("pruned") else {})}
            for rank, t in enumerate(ranked[:n])]


def reasons(evaluation: dict) -> list[str]:
    """Why a candidate was (not) blessed: the evaluate step's reasons, or its failed thresholds."""
    given = [str(r) for r in evaluation.get("reasons") or [] if str(r).strip()]
    if given:
        return given
    failed = [f"{f.get('metric')} {f.get('value')} vs {f.get('threshold')}"
              for f in evaluation.get("failed_thresholds") or []]
    if failed or evaluation.get("blessed"):
        return failed
    return ["not blessed, and its evaluation gave no reason"]


def verdict_line(evaluation: dict) -> str:
    """`rank 0: blessed (reason)` / `rank 1: not blessed: reason; reason`, on one line."""
    word = "blessed" if evaluation.get("blessed") else "not blessed"
    return f"rank {evaluation.get('rank')}: {word}: {'; '.join(reasons(evaluation)) or '-'}"


def nothing_deployed(evaluations: Iterable[Any]) -> str:
    """One line: nothing is deployed, with each candidate's reason."""
    evaluations = [e for e in evaluations if e]
    why = " | ".join(f"rank {e.get('rank')}: {'; '.join(reasons(e))}" for e in evaluations)
    return f"nothing deployed: no candidate was blessed ({why or 'no evaluation'})"


def select_blessed(evaluations: Iterable[Any]) -> dict:
    """The blessed candidate with the lowest eval MAE (ties: better rank)."""
    evaluations = [e for e in evaluations if e]
    blessed = [e for e in evaluations if e.get("blessed")]
    if not blessed:
        raise NoCandidate(nothing_deployed(evaluations))
    return min(blessed, key=lambda e: (_badness(e), e["rank"]))


def headline(evaluation: dict) -> tuple[str, float | None]:
    """(metric, value) a candidate is judged by: the evaluation's headline (a classifier's AUC or
    accuracy), else a regression's MAE."""
    given = evaluation.get("headline") or {}
    if given.get("metric"):
        return given["metric"], given.get("value")
    return "mae", (evaluation.get("overall") or {}).get("mae")


def _badness(evaluation: dict) -> float:
    """Lower is better: the headline metric, negated when it improves upwards."""
    metric, value = headline(evaluation)
    higher_is_better = (evaluation.get("headline") or {}).get("direction") == "max"
    if value is None:
        return float("inf")
    return -value if higher_is_better else value
