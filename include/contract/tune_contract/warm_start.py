"""When a previous run's trials may seed a new search (warm start), decided the same way by the
plan (from what it knows before `prepare`) and by the chief (with both feature specs at hand).

The rule, field by field (`problem` names the first field that differs):

- the tuned thing: `model`, `objective_function`, and the objective (name and direction) equal;
- `epochs` (per trial) and `executions_per_trial` equal: a score after 3 epochs does not rank
  with one after 10;
- the algorithm is not grid or hyperband: grid enumerates its own points and hyperband runs its
  own brackets, neither would use a seeded trial as intended;
- the search space: the same parameter names, each with the same type and scale (linear/log)
  and, for a choice, the same kind of values. Ranges may differ (a bound tightened, a choice
  added): only the previous trials whose values are points of the new space seed it
  (`SearchSpace.violation`), the others are left out and counted. A user model's space is what
  it declares (with the run's `search_space` overrides applied), known only once the model is
  built on the prepared data: the plan cannot compare it and says so; the chief compares the
  space each chief records (`space.json`: `kinds`), the same rule;
- the feature spec (checked by the chief, after `prepare`): the same label, the same numeric
  and the same categorical feature names. Statistics and vocabularies may change: new data is
  why a model is retuned.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tune_contract import models
from tune_contract.search_space import Parameter, validate

ALGORITHMS_WITHOUT_WARM_START: Final = {"grid": "grid enumerates its own points",
                                        "hyperband": "hyperband runs its own brackets"}
_SAME: Final = ("model", "objective_function", "objective", "epochs", "executions_per_trial")


def search_identity(*, model: str | None, algorithm: str, search_space: list[dict] | None, objective: str,
                    direction: str, objective_function: str | None, epochs: int, executions_per_trial: int,
                    seed: int | None = None) -> dict[str, Any]:
    """A search as the chief records it in `search.json`: what makes two processes take part in
    the same search (with `seed`; max_trials may grow on a restart) and what the warm-start rule
    compares (without it). Built here for both sides: the chief (`Settings.identity`) and the
    plan, which looks for a previous run before any pod starts."""
    identity = {"model": None if objective_function else model, "algorithm": algorithm,
                "search_space": search_space, "objective": {"name": objective, "direction": direction},
                "objective_function": objective_function, "epochs": epochs,
                "executions_per_trial": executions_per_trial}
    return identity if seed is None else {**identity, "seed": seed}


def _kind(parameter: Parameter) -> str:
    if parameter.type == "choice":
        return choice_kind(parameter.values[0] if parameter.values else None)
    return numeric_kind(parameter.type, parameter.log)


def choice_kind(value: Any) -> str:
    """The kind of a choice (a boolean, a fixed value): by the type of its values."""
    return f"a choice of {type(value).__name__ if value is not None else 'nothing'}"


def numeric_kind(kind: str, log: bool) -> str:
    return f"{'a log' if log else 'a linear'} {kind}"


def kinds(search_space: Any) -> dict[str, str]:
    """{name: kind} of a declarative space (the built-in model's, a benchmark function's)."""
    return {p.name: _kind(p) for p in validate(search_space or [], "search_space").parameters}


def declared_by_model(search: Mapping[str, Any]) -> bool:
    """Whether a search's space is a user model's (declared by the model, known after prepare)."""
    return not search.get("objective_function") and not models.is_default(search.get("model"))


def kinds_problem(before: Mapping[str, str], now: Mapping[str, str]) -> str | None:
    """Why a space of these parameter kinds cannot seed one of those, or None."""
    if set(before) != set(now):
        added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
        return "search_space differs: " + "; ".join(
            ([f"added {', '.join(added)}"] if added else [])
            + ([f"removed {', '.join(removed)}"] if removed else []))
    for name in sorted(now):
        if before[name] != now[name]:
            return f"search_space.{name} differs: {before[name]} then, {now[name]} now"
    return None


def search_problem(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """Why the previous search (its `search.json`) cannot seed the current one (the same
    `search_identity` of the current run), or None."""
    if current.get("algorithm") in ALGORITHMS_WITHOUT_WARM_START:
        return f"algorithm {current['algorithm']}: {ALGORITHMS_WITHOUT_WARM_START[current['algorithm']]}"
    if not isinstance(previous, Mapping):
        return "its search.json is not a search record"
    for key in _SAME:
        if (key in current
                and previous.get(key, current.get(key) if key == "model" else None) != current.get(key)):
            return f"{key} differs: {previous.get(key)!r} then, {current.get(key)!r} now"
    if declared_by_model(current):  # compared by the chief, on the spaces the two chiefs recorded
        return None
    return kinds_problem(kinds(previous.get("search_space")), kinds(current.get("search_space")))


def spec_problem(previous: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> str | None:
    """Why the previous run's feature spec is not the current one's (names and types), or None."""
    if previous is None or current is None:
        return None if previous is current else "feature spec: the previous run has none"
    if previous.get("label") != current.get("label"):
        return f"feature spec label differs: {previous.get('label')!r} then, {current.get('label')!r} now"
    for kind in ("numeric", "categorical"):
        was, now = set(previous.get(kind) or {}), set(current.get(kind) or {})
        if was != now:
            change = [f"added {', '.join(sorted(now - was))}"] if now - was else []
            change += [f"removed {', '.join(sorted(was - now))}"] if was - now else []
            return f"feature spec {kind} features differ: {'; '.join(change)}"
    return None


def after_prepare_note(run_id: str) -> str:
    """The plan's line when the chief decides (a user model's space is known after prepare)."""
    return (f"warm start from run {run_id} if its model's search space and feature spec match "
            "(decided by the chief after prepare)")


def note(run_id: str | None, seeded: int | None = None, left_out: int = 0, why_not: str | None = None) -> str:
    """The one line the plan, the chief's result and the summary carry."""
    if why_not:
        return f"no warm start: {why_not}"
    extra = f" ({left_out} outside the new space left out)" if left_out else ""
    return f"warm start from run {run_id}: {seeded} trials{extra}"
