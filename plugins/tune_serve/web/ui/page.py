"""The HTML of the run view: what shipped, the leaderboard, the plots, the candidates, the model.

Server-rendered; the leaderboard sorts by links (no script needed), the plots are Vega-Lite
specs inlined as JSON data blocks that `static/render.js` hands to Vega-Embed. Every value
from storage is escaped; JSON is embedded with `<` escaped so it cannot close its block.

Stored files are not trusted (whoever can write to the bucket can craft one), and a field the
contract says is a number may hold markup: every interpolation goes through `_e` (or `_format`,
which escapes too), the numbers this module computes itself included, so that none is ever
left out by reasoning about its type (tests/airflow/test_run_view_hostile.py).
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from tune_serve.web.ui import charts
from tune_serve.web.ui.run_state import RunState, shown, trial_order
from tune_serve.workflow import run_note

# key: (title, sort key; the objective sorts best first, see _sort)
COLUMNS: dict[str, tuple[str, Callable[[dict], Any]]] = {
    "trial_id": ("Trial", trial_order),
    "tuner_id": ("Tuner", lambda t: t.get("tuner_id") or ""),
    "status": ("Status", lambda t: t["status"]),
    "objective": ("Objective", lambda t: t.get("objective")),
    "epochs": ("Epochs", lambda t: t.get("epochs") or 0),
    "seconds": ("Seconds", lambda t: t.get("seconds") or 0),
    "resumed_from_epoch": ("Resumed from epoch", lambda t: t.get("resumed_from_epoch") or 0),
}
STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;color:#1a202c;font-size:14px}
h1{font-size:20px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #e2e8f0}
table{border-collapse:collapse}
td,th{padding:4px 8px;border-bottom:1px solid #edf2f7;text-align:left}td{white-space:nowrap}
th a{color:inherit}tr.top{background:#f0fff4}
.badge{background:#38a169;color:#fff;border-radius:8px;padding:0 6px;white-space:nowrap}
.banner{padding:10px 14px;border-radius:6px;font-size:16px;background:#ebf8ff}.banner.none{background:#fffaf0}
.banner.failed{background:#fff5f5;border-left:4px solid #c53030}
.plot{margin:8px 0 18px}.muted{color:#718096}code{background:#f7fafc;padding:1px 4px}
.candidate{display:inline-block;vertical-align:top;margin:0 18px 18px 0;padding:8px;border:1px solid #e2e8f0}
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _json_block(element_id: str, spec: dict) -> str:
    data = json.dumps(spec, default=str).replace("<", "\\u003c")
    return f'<script type="application/json" id="{_e(element_id)}">{data}</script>'


def _plot(element_id: str, spec: dict | None, empty: str, marks: int) -> str:
    if spec is None:
        return f'<p class="muted" data-plot-empty="{_e(element_id)}">{_e(empty)}</p>'
    return (f'<div class="plot" id="{_e(element_id)}" data-plot data-expected-marks="{_e(marks)}"></div>'
            + _json_block(f"{element_id}-spec", spec))


def _format(value, digits: int = 4) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _e(value)


def _sort(trials: list[dict], key: str, descending: bool, direction: str) -> list[dict]:
    if key == "objective":  # best first by default; unfinished trials last either way
        sign = -1 if direction == "max" else 1
        done = sorted((t for t in trials if t.get("objective") is not None),
                      key=lambda t: sign * t["objective"], reverse=descending)
        return done + [t for t in trials if t.get("objective") is None]
    return sorted(trials, key=COLUMNS[key][1], reverse=descending)


def leaderboard(state: RunState, sort: str, descending: bool) -> str:
    names = state.hyperparameter_names
    head = "".join(
        f'<th><a href="?{urlencode({"sort": key, "desc": int(key == sort and not descending)})}">{_e(title)}'
        f'{" ▾" if key == sort and descending else " ▴" if key == sort else ""}</a></th>'
        for key, (title, _) in COLUMNS.items())
    rows = []
    for t in _sort(state.trials, sort, descending, state.objective.get("direction", "min")):
        badge = (f' <span class="badge">top {_e(t["top_rank"])}</span>'
                 if t.get("top_rank") is not None else "")
        handoffs = f' ({_e(t["handoffs"])}× lost its tuner)' if t.get("handoffs") else ""
        why = t.get("pruned") or t.get("failure")  # early stopping's reason, or a diverged loss
        handoffs += f'<br><small class="muted">{_e(why)}</small>' if why else ""
        params = "".join(f"<td>{_format(t['hyperparameters'].get(n))}</td>" for n in names)
        rows.append(
            f'<tr data-trial-id="{_e(t["trial_id"])}" class="{"top" if badge else ""}">'
            f'<td>{_e(t["trial_id"])}{badge}</td><td>{_e(t.get("tuner_id"))}</td><td>{_e(t["status"])}'
            f'{handoffs}</td>'
            f'<td>{_format(t.get("objective"), 6)}</td><td>{_e(t.get("epochs"))}</td>'
            f'<td>{_format(t.get("seconds"))}</td>'
            f'<td>{_e(t.get("resumed_from_epoch"))}</td>{params}</tr>')
    param_head = "".join(f"<th>{_e(n)}</th>" for n in names)
    return (f'<table id="leaderboard"><thead><tr>{head}{param_head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _candidate(c: dict, objective: str) -> str:
    evaluation = c.get("evaluation") or {}
    overall = evaluation.get("overall") or {}
    baseline = (evaluation.get("baseline") or {}).get("overall") or {}
    metrics = "".join(
        f"<tr><td>{_e(m)}</td><td>{_format(v)}</td><td>{_format((baseline or {}).get(m))}</td></tr>"
        for m, v in sorted(overall.items()) if isinstance(v, (int, float)))
    verdict = ("blessed" if c.get("blessed") else "not blessed" if c.get("blessed") is False
               else "not evaluated")
    training = c.get("training") or {}
    if training.get("failed"):
        verdict = f"training failed: {training['failed']}"  # the trainer's reason: stored text, escaped below
    deployed = (f'<p><b>deployed as version {_e(c["deployed_version"])}</b></p>'
                if c.get("deployed_version") is not None else "")
    curves = charts.learning_curves(c, objective)
    logs = training.get("logs")
    tensorboard = (f"<p>TensorBoard: <code>tensorboard --logdir {_e(shown(str(logs)))}</code></p>"
                   if logs else "")
    return (f'<div class="candidate" id="candidate-{_e(c["rank"])}" data-candidate-rank="{_e(c["rank"])}">'
            f'<h3>Candidate {_e(c["rank"])} '
            f'(trial {_e(c.get("trial_id"))})</h3>{deployed}<p>Verdict: <b>{_e(verdict)}</b></p>'
            f'<ul>{"".join(f"<li>{_e(r)}</li>" for r in c.get("reasons") or [])}</ul>'
            f'<p class="muted">{_e(json.dumps(c.get("hyperparameters"), sort_keys=True))}; '
            f'{_e(training.get("epochs", "?"))} epochs trained'
            f'{", stopped early" if training.get("stopped_early") else ""}'
            "</p>"
            f'<table><tr><th>metric</th><th>candidate</th><th>serving baseline</th></tr>{metrics}</table>'
            + _plot(f"curves-{c['rank']}", curves, "No training history recorded for this candidate.",
                    2 if curves else 0) + tensorboard + "</div>")


def _eval_metric(version: dict) -> str:
    """"MAE 411.9" for a regression, "AUC 0.83" / "accuracy 0.93" for a classifier."""
    metric = version.get("eval_metric") or {"name": "mae", "value": version.get("eval_mae")}
    name = {"mae": "MAE", "auc": "AUC"}.get(str(metric.get("name")), str(metric.get("name")))
    return f"{_e(name)} {_format(metric.get('value'))}"


def _versions(versions: list[dict], labels: dict[str, int] | None) -> str:
    if not versions:
        return '<p class="muted">No run under this storage root deployed this model.</p>'
    by_version: dict[int, list[str]] = {}
    for label, version in sorted((labels or {}).items()):
        by_version.setdefault(int(version), []).append(label)
    unknown = '<span class="muted">unavailable</span>'
    rows = "".join(
        f'<tr><td>{_e(v["version"])}</td>'
        f'<td class="label">'
        f'{unknown if labels is None else _e(", ".join(by_version.get(int(v["version"]), [])))}</td>'
        f'<td><a href="{_e(quote(str(v["run_id"]), safe=""))}" target="_self">{_e(v["run_id"])}</a></td>'
        f'<td>{_e(v.get("candidate_rank"))}</td><td>{_eval_metric(v)}</td>'
        f'<td>{_e(v.get("previous_version"))}</td></tr>'
        for v in versions)
    note = ('<p class="muted">Labels: what the model server routes now (stable takes requests without a '
            'version; canary is being smoke-tested).</p>' if labels is not None else
            '<p class="muted">The serving platform could not be asked for its labels just now.</p>')
    return ('<table id="versions"><tr><th>version</th><th>label</th><th>run</th><th>candidate rank</th>'
            f'<th>eval metric</th><th>replaced version</th></tr>{rows}</table>{note}')


def _failures(state: RunState, facts: dict | None) -> str:
    """Every task that failed for good, with its own one-line reason (tune_serve.workflow.failures)."""
    states = (facts or {}).get("tasks") or {}
    # a reason recorded by a task that failed then (not one since cleared and run again)
    rows = sorted((f for key, f in state.failures.items() if states.get(key, "failed") == "failed"),
                  key=lambda f: float(f["at"]) if isinstance(f.get("at"), (int, float)) else 0.0)
    if len(rows) > 1:  # summarize fails the run by naming the others: its own line only repeats them
        rows = [f for f in rows if f.get("key") != "summarize"]
    if not rows:
        return ""
    items = "".join(f'<li data-failed-task="{_e(f.get("key"))}"><b>{_e(f.get("key"))}</b>: '
                    f'{_e(f.get("reason"))}</li>' for f in rows)
    return f'<h2>Failed tasks</h2><ul id="failed-tasks">{items}</ul>'


def _status(state: RunState, facts: dict | None) -> str:
    """Where the run is, in Airflow's words, when it has not recorded a summary."""
    if facts is None or state.summary:
        return ""
    running = sorted(k for k, s in (facts.get("tasks") or {}).items()
                     if s in ("running", "deferred", "queued"))
    return (f'<p id="run-state">Airflow: run {_e(facts.get("state"))}'
            + (f"; running now: {_e(', '.join(running))}" if running else "") + "</p>")


def unknown(run_id: str) -> str:
    """The page of a run id Airflow does not know and nothing is stored for."""
    return message(f"No run {run_id!r}: Airflow has no such run of tune_train_serve "
                   "and nothing is stored for it.")


def message(text: str) -> str:
    """A page of one sentence (an error of the view: never raw JSON in the run's tab)."""
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>tune_serve</title>'
            f'<style>{STYLE}</style></head>'
            f'<body><p id="view-message" class="banner none">{_e(text)}</p></body></html>')


def render(state: RunState, versions: list[dict], sort: str = "objective", descending: bool = False,
           static: str = "../static", labels: dict[str, int] | None = None, outcome: str | None = None,
           facts: dict | None = None) -> str:
    if sort not in COLUMNS:
        sort = "objective"
    note = outcome if outcome is not None else run_note.outcome(
        state.summary, [c["evaluation"] for c in state.candidates if c["evaluation"]], facts, state.failures)
    failed = ((state.summary or {}).get("failure") or (facts or {}).get("cancelled")
              or (not state.summary and (facts or {}).get("state") == "failed"))
    running = (facts or {}).get("state") in run_note.UNFINISHED
    objective = state.objective.get("name", "objective")
    over_time, bars = charts.trials_over_time(state)
    importance, importance_note = charts.importance(state)
    n_done, n_params = len(state.completed), len(state.hyperparameter_names)
    task = (state.summary or {}).get("task")
    if state.live:  # the chief has no result yet: what its project holds so far
        unfinished = len(state.trials) - n_done
        search = ((f"The search is under way: {_e(n_done)} trials completed so far, "
                   f"{_e(unfinished)} running; " if running else
                   f"The search ended without a result of its chief: {_e(n_done)} trials completed, "
                   f"{_e(unfinished)} unfinished; ")
                  + f"objective {_e(objective)} ({_e(state.objective.get('direction'))}).")
    elif state.trials or state.max_trials is not None:
        search = (f"{'task ' + _e(task) + '; ' if task else ''}"
                  f"{_e(n_done)} of {_e(state.max_trials)} trials completed, "
                  f"{_e(len(state.trials) - n_done)} lost; "
                  f"objective {_e(objective)} ({_e(state.objective.get('direction'))}); "
                  f"tuners lost at least once: {_e(', '.join(state.lost_tuners) or 'none')}"
                  + ("; the search deadline was hit" if state.deadline_hit else "")
                  + "".join(f"; {_e(note)}" for note in state.search_notes))
    else:  # the chief has recorded no result: the search has not ended, or never ran
        search = ("The search has recorded no result so far." if running else
                  "No search result was recorded: the run ended before its search finished.")
    model_name = (state.summary or {}).get("model_name")
    no_trial = "No trial completed so far." if running else "No completed trial."
    body = [
        f"<h1>tune_train_serve run {_e(state.run_id)}</h1>",
        f'<p id="run-outcome" class="banner'
        f'{" failed" if failed else "" if (state.summary or {}).get("deployed") else " none"}"'
        f">{_e(note)}</p>",
        _status(state, facts),
        _failures(state, facts),
        f'<p id="search-summary">{search}</p>',
        "<h2>Trials</h2>", leaderboard(state, sort, descending),
        "<h2>Objective by trial</h2>",
        _plot("plot-objective", charts.objective_over_trials(state) if n_done else None, no_trial, n_done),
        "<h2>Hyperparameters</h2>",
        _plot("plot-parallel", charts.parallel_coordinates(state) if n_done else None, no_trial, n_done),
        _plot("plot-scatter", charts.objective_vs_parameters(state) if n_done else None, no_trial,
              n_done * n_params),
        "<h3>Parameter importance</h3>", _plot("plot-importance", importance, importance_note, n_params),
        f'<p class="muted">{_e(importance_note) if importance else ""}</p>',
        "<h2>Trials over time</h2>",
        '<p class="muted">One row per tuner, a bar per trial it finished, from start to end of the run '
        "that finished it; orange: resumed from a backup after a preemption, red: taken over from a lost "
        "tuner.</p>",
        _plot("plot-timeline", over_time, "No trial recorded its start and end time.", bars),
        "<h2>Candidates</h2>",
        f"<p>All candidates in TensorBoard: <code>tensorboard --logdir {_e(shown(state.root))}/models"
        "</code></p>" if state.candidates else "",
        "".join(_candidate(c, objective) for c in state.candidates)
        or '<p class="muted">No candidate trained.</p>',
    ]
    if model_name:
        body += [f"<h2>Model {_e(model_name)}: versions deployed</h2>", _versions(versions, labels)]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>run {_e(state.run_id)}</title>'
            f"<style>{STYLE}</style>"
            f'<script src="{static}/vega.min.js"></script>'
            f'<script src="{static}/vega-lite.min.js"></script>'
            f'<script src="{static}/vega-embed.min.js"></script>'
            f'<script src="{static}/render.js" defer></script>'
            f'</head><body>{"".join(body)}'
            f'<p class="muted">Read from the run\'s stored results at {generated}.</p>'
            "</body></html>")


RUN_COLUMNS = [  # (key, title, sorted by Airflow's database)
    ("run_id", "Run", True), ("state", "State", True), ("outcome", "Outcome", False),
    ("best", "Best objective", False), ("deployed", "Deployed (label now)", False),
    ("rows", "Data rows", False), ("duration", "Duration", True), ("trigger", "Trigger", True),
    ("user", "Triggered by", True), ("started", "Started", True)]
PAGE_SIZE = 50


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return ""
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s" if minutes
            else f"{seconds} s")


def _when(value: Any) -> str:
    return (datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if isinstance(value, (int, float)) else "")


def run_outcome(run: dict, summary: dict) -> str:
    """A run's line in the list: a cancel (the note's line, where Airflow's audit log is read),
    else what its summary says, else the note's line, else where it is."""
    ours = [p.strip() for p in str(run.get("note") or "").split("\n\n")
            if p.strip().startswith(("cancelled", "deployed ", "nothing ", "the run "))]
    cancelled = [p for p in ours if p.startswith("cancelled")]
    if cancelled:
        return cancelled[-1]
    if isinstance(summary.get("outcome"), str):
        return summary["outcome"]
    if summary:  # a summary written before it carried its outcome line
        try:
            return run_note.text(summary)
        except (KeyError, TypeError, ValueError, AttributeError):
            return "its summary.json does not have the expected form"
    if ours:
        return ours[-1]
    return ("running: nothing decided yet" if run.get("state") in run_note.UNFINISHED
            else "no summary recorded")


def _deployed(summary: dict, labels: dict[str, int] | None) -> str:
    deployed = summary.get("deployed")
    if not isinstance(deployed, dict) or deployed.get("version") is None:
        return ""
    version = deployed["version"]
    now = sorted(label for label, v in (labels or {}).items() if str(v) == str(version))
    label = "" if labels is None else f" ({', '.join(now)})" if now else " (no label now)"
    return f"{_e(deployed.get('model_name'))} v{_e(version)}{_e(label)}"


def _best(summary: dict) -> str:
    best = summary.get("best")
    if not isinstance(best, dict) or best.get("value") is None:
        return ""
    return f"{_e(best.get('objective'))} {_format(best.get('value'))}"


def _rows(summary: dict) -> str:
    rows = summary.get("data_rows")
    if not isinstance(rows, dict):
        return ""
    counts = [f"{n:,} {name}" if isinstance(n, int) else f"{_e(n)} {name}" for name, n in
              (("train", rows.get("train")), ("eval", rows.get("eval")))]
    return _e(" / ".join(counts))


def runs_list(runs: list[tuple[dict, dict, dict[str, int] | None]] | None, total: int, page: int, sort: str,
              descending: bool) -> str:
    """The DAG's runs, newest first: `runs` holds, per run of the page, Airflow's record of it
    (tune_serve.web.airflow_runs.runs_page), its summary.json (or {}) and its model's labels now."""
    pages = max(1, -(-total // PAGE_SIZE))

    def link(**changes) -> str:
        query = {"sort": sort, "desc": int(descending), "page": page, **changes}
        return "?" + urlencode(query)

    head = "".join(
        f'<th><a href="{_e(link(sort=key, desc=int(not (key == sort and descending)), page=1))}">{_e(title)}'
        f'{" ▾" if key == sort and descending else " ▴" if key == sort else ""}</a></th>' if sortable
        else f"<th>{_e(title)}</th>" for key, title, sortable in RUN_COLUMNS)
    rows = []
    now = datetime.now(UTC).timestamp()
    for run, summary, labels in runs or []:
        state = str(run.get("state"))
        failed = state == "failed"
        duration = (_seconds(run.get("seconds")) if run.get("seconds") is not None else
                    f"running for {_seconds(now - run['started'])}" if state in run_note.UNFINISHED
                    and isinstance(run.get("started"), (int, float)) else "")
        rows.append(
            f'<tr data-run-id="{_e(run.get("run_id"))}" data-state="{_e(state)}" '
            f'class="{"failed" if failed else ""}">'
            f'<td><a href="runs/{_e(quote(str(run.get("run_id")), safe=""))}" target="_self">'
            f'{_e(run.get("run_id"))}</a></td>'
            f"<td>{'<b class=failed-mark>✗ failed</b>' if failed else _e(state)}</td>"
            f'<td class="outcome">{_e(run_outcome(run, summary))}</td><td>{_best(summary)}</td>'
            f"<td>{_deployed(summary, labels)}</td><td>{_rows(summary)}</td><td>{_e(duration)}</td>"
            f"<td>{_e(run.get('trigger'))}</td><td>{_e(run.get('user'))}</td><td>{_e(_when(run.get('started')))}</td>"
            "</tr>")
    if runs is None:
        body = "<p class='muted'>Airflow's records of the runs could not be read just now.</p>"
    else:
        pager = (f'<p id="pager">Page {_e(page)} of {_e(pages)} ({_e(total)} runs)'
                 + (f' · <a href="{_e(link(page=page - 1))}">newer</a>' if page > 1 else "")
                 + (f' · <a href="{_e(link(page=page + 1))}">older</a>' if page < pages else "") + "</p>")
        body = (f'<table id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
                f"{pager}" if rows else "<p class='muted'>No run of tune_train_serve yet.</p>")
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>tune_serve runs</title>'
            f"<style>{STYLE}tr.failed{{background:#fff5f5}}.failed-mark{{color:#c53030}}"
            "td.outcome{white-space:normal;max-width:42em}</style></head>"
            f"<body><h1>tune_train_serve runs</h1>{body}"
            "<p class='muted'>Sorted by Airflow's records (run, state, duration, trigger, user, start); "
            "the other columns come from each run's summary.json and the serving platform.</p></body></html>")
