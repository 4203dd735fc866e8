"""Vega-Lite specifications of the run view's plots, with their data inlined.

The page renders them with the Vega, Vega-Lite and Vega-Embed builds vendored in
`static/vega/` (nothing is fetched at view time). Each plot draws one mark per item the
browser test counts: a point per completed trial, a line per trial, a bar per parameter or
per trial run. Parameter importance is scikit-learn's random-forest impurity importance
(already in the Airflow environment, via the Google provider).
"""
from __future__ import annotations

import functools
import json
import math
from typing import Any

from tune_serve.web.ui.run_state import FAILED, LOST, PRUNED, RunState

SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"  # an identifier only; never fetched
WIDTH = 560
STATUS_COLOURS = {"completed": "#4c78a8", "resumed after preemption": "#f58518", "handed over": "#e45756",
                  PRUNED: "#72b7b2", FAILED: "#b279a2", LOST: "#9d9d9d"}


def _spec(**body) -> dict:
    return {"$schema": SCHEMA, "config": {"view": {"stroke": None}}, **body}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def objective_over_trials(state: RunState) -> dict:
    """Each completed trial's objective by trial number, and the best so far."""
    sign = -1 if state.objective.get("direction") == "max" else 1
    rows, best = [], None
    for t in state.completed:
        best = t["objective"] if best is None or sign * t["objective"] < sign * best else best
        rows.append({"trial": t["number"], "trial_id": t["trial_id"], "objective": t["objective"],
                     "best_so_far": best, "status": t["status"]})
    name = state.objective.get("name", "objective")
    x = {"field": "trial", "type": "quantitative", "title": "trial number", "axis": {"tickMinStep": 1}}
    y = {"type": "quantitative", "title": name, "scale": {"zero": False}}
    return _spec(width=WIDTH, height=260, data={"values": rows}, layer=[
        {"mark": {"type": "line", "interpolate": "step-after", "color": "#54a24b"},
         "encoding": {"x": x, "y": {"field": "best_so_far", **y}}},
        {"mark": {"type": "point", "filled": True, "size": 70},
         "encoding": {"x": x, "y": {"field": "objective", **y},
                      "color": {"field": "status", "type": "nominal",
                                "scale": {"domain": list(STATUS_COLOURS),
                                          "range": list(STATUS_COLOURS.values())}},
                      "tooltip": [{"field": "trial_id"}, {"field": "objective"}, {"field": "best_so_far"}]}},
    ])


def _scaled(values: list[Any]) -> tuple[list[float], list[str]]:
    """Each value on [0, 1]: numbers by range, anything else by its sorted position."""
    maybe = [_number(v) for v in values]
    numbers = [n for n in maybe if n is not None]
    if len(numbers) == len(values):
        low, high = min(numbers), max(numbers)
        return [0.5 if high == low else (n - low) / (high - low) for n in numbers], [f"{low:g}", f"{high:g}"]
    levels = sorted({str(v) for v in values})
    position = {level: i / max(len(levels) - 1, 1) for i, level in enumerate(levels)}
    return [position[str(v)] for v in values], [levels[0], levels[-1]]


def parallel_coordinates(state: RunState) -> dict:
    """One line per completed trial across every hyperparameter (scaled to its range), coloured
    by objective."""
    trials, names = state.completed, state.hyperparameter_names
    rows = []
    for name in names:
        scaled, _ = _scaled([t["hyperparameters"].get(name) for t in trials])
        for t, s in zip(trials, scaled, strict=True):  # _scaled keeps one value per trial
            rows.append({"trial_id": t["trial_id"], "parameter": name, "scaled": s,
                         "value": str(t["hyperparameters"].get(name)), "objective": t["objective"]})
    return _spec(width=WIDTH, height=260, data={"values": rows},
                 mark={"type": "line", "strokeWidth": 2, "opacity": 0.8},
                 encoding={"x": {"field": "parameter", "type": "nominal", "sort": names, "title": None,
                                 "axis": {"labelAngle": 0, "grid": True}},
                           "y": {"field": "scaled", "type": "quantitative", "title": "scaled to range",
                                 "scale": {"domain": [0, 1]}},
                           "detail": {"field": "trial_id"},
                           "color": {"field": "objective", "type": "quantitative",
                                     # best is the brightest whichever the direction
                                     "scale": {"scheme": "viridis",
                                               "reverse": state.objective.get("direction") != "max"}},
                           "tooltip": [{"field": "trial_id"}, {"field": "parameter"}, {"field": "value"},
                                       {"field": "objective"}]})


def objective_vs_parameters(state: RunState) -> dict:
    """One small scatter per hyperparameter: its value against the objective, a point per trial."""
    name = state.objective.get("name", "objective")
    charts = []
    for parameter in state.hyperparameter_names:
        values = [t["hyperparameters"].get(parameter) for t in state.completed]
        numeric = all(_number(v) is not None for v in values)
        rows = [{"value": _number(v) if numeric else str(v), "objective": t["objective"],
                 "trial_id": t["trial_id"]}
                for t, v in zip(state.completed, values, strict=True)]
        charts.append({"width": 170, "height": 150, "title": parameter, "data": {"values": rows},
                       "mark": {"type": "point", "filled": True},
                       "encoding": {"x": {"field": "value", "type": "quantitative" if numeric else "nominal",
                                          "title": parameter,
                                          **({"scale": {"zero": False}} if numeric else {})},
                                    "y": {"field": "objective", "type": "quantitative", "title": name,
                                          "scale": {"zero": False}},
                                    "tooltip": [{"field": "trial_id"}, {"field": "value"},
                                                {"field": "objective"}]}})
    return _spec(concat=charts, columns=3)


def importance(state: RunState) -> tuple[dict | None, str]:
    """Random-forest impurity importance of each hyperparameter for the objective; (spec, note)."""
    trials, names = state.completed, state.hyperparameter_names
    if len(trials) < 3 or not names:
        return None, f"Parameter importance needs at least 3 completed trials; this run has {len(trials)}."
    key = (tuple(names), tuple((json.dumps(t["hyperparameters"], sort_keys=True, default=str), t["objective"])
                               for t in trials))
    rows = _importances(key)
    note = (f"scikit-learn RandomForestRegressor (200 trees) impurity importance over {len(trials)} "
            "completed trials; with few trials it is a rough guide.")
    return _spec(width=WIDTH, height=max(60, 26 * len(rows)), data={"values": rows}, mark="bar",
                 encoding={"y": {"field": "parameter", "type": "nominal", "sort": "-x", "title": None},
                           "x": {"field": "importance", "type": "quantitative"},
                           "tooltip": [{"field": "parameter"}, {"field": "importance"}]}), note


@functools.lru_cache(maxsize=32)
def _importances(key: tuple[tuple[str, ...], tuple[tuple[str, float], ...]]) -> list[dict]:
    """The forest's rows for these trials. Cached: re-sorting the table re-renders the page, and
    200 trees on a few hundred trials cost more than the rest of it (the fit is seeded, so a
    cached answer is the one a refit would give)."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor

    names, trials = key[0], [(json.loads(hps), objective) for hps, objective in key[1]]
    columns, owners = [], []
    for name in names:
        values = [hps.get(name) for hps, _ in trials]
        if all(_number(v) is not None for v in values):
            columns.append([_number(v) for v in values])
            owners.append(name)
        else:  # one-hot: a choice's importance is the sum over its levels
            for level in sorted({str(v) for v in values}):
                columns.append([1.0 if str(v) == level else 0.0 for v in values])
                owners.append(name)
    features = np.array(columns).T
    target = np.array([objective for _, objective in trials])
    forest = RandomForestRegressor(n_estimators=200, random_state=0).fit(features, target)
    totals = {name: 0.0 for name in names}
    for owner, value in zip(owners, forest.feature_importances_, strict=True):  # one per column
        totals[owner] += float(value)
    return [{"parameter": n, "importance": round(v, 4)}
            for n, v in sorted(totals.items(), key=lambda kv: -kv[1])]


def trials_over_time(state: RunState) -> tuple[dict | None, int]:
    """One row per tuner, a bar per trial it finished (coloured by status); a lost tuner's row is
    labelled so. Returns (spec, number of bars)."""
    rows = []
    for t in state.trials:
        if t.get("started_at") is None or t.get("ended_at") is None:
            continue
        tuner = t.get("tuner_id") or "?"
        rows.append({"tuner": f"{tuner} (lost once)" if tuner in state.lost_tuners else tuner,
                     "start": t["started_at"] * 1000, "end": t["ended_at"] * 1000, "trial_id": t["trial_id"],
                     "status": t["status"], "resumed_from_epoch": t.get("resumed_from_epoch") or 0,
                     "handoffs": t.get("handoffs", 0)})
    if not rows:
        return None, 0
    height = max(80, 40 * len({r["tuner"] for r in rows}))
    return _spec(width=WIDTH, height=height, data={"values": rows}, layer=[
        {"mark": {"type": "bar", "cornerRadius": 2, "height": {"band": 0.7}},
         "encoding": {"y": {"field": "tuner", "type": "nominal", "title": None},
                      "x": {"field": "start", "type": "temporal", "title": "time (UTC)",
                            "timeUnit": "utcyearmonthdatehoursminutesseconds"},
                      "x2": {"field": "end"},
                      "color": {"field": "status", "type": "nominal",
                                "scale": {"domain": list(STATUS_COLOURS),
                                          "range": list(STATUS_COLOURS.values())}},
                      "tooltip": [{"field": "trial_id"}, {"field": "status"}, {"field": "resumed_from_epoch"},
                                  {"field": "handoffs", "title": "hand-overs"}]}},
    ]), len(rows)


def learning_curves(candidate: dict, objective: str) -> dict | None:
    """Training and validation curves of one candidate from its Keras history, a line per metric."""
    history = candidate.get("history") or []
    base = objective.removeprefix("val_")
    metrics = [m for m in (base, f"val_{base}") if any(m in row for row in history)]
    if not metrics:
        return None
    rows = [{"epoch": row["epoch"] + 1, "metric": m, "value": row[m]}
            for row in history for m in metrics if m in row]
    return _spec(width=260, height=160, data={"values": rows}, mark={"type": "line", "point": False},
                 encoding={"x": {"field": "epoch", "type": "quantitative", "axis": {"tickMinStep": 1}},
                           "y": {"field": "value", "type": "quantitative", "title": base,
                                 "scale": {"zero": False}},
                           "color": {"field": "metric", "type": "nominal"}})
