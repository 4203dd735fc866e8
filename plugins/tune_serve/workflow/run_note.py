"""The one line a run says about what it shipped: `summary.json`'s `outcome` (the last line
`summarize` logs), its Airflow run note and the run view's banner.

"deployed diamonds v3 (candidate 1, MAE 411.9, was 420.2)", "deployed titanic v2 (binary,
candidate 1, AUC 0.828)", "nothing deployed: rank 0 not blessed: MAE 1,238 > bound 1,000", or for
a verdict that went stale before it deployed, "nothing deployed: candidate 1 refused: evaluated
against v1; v2 serves now: …" (tune_serve.serving.deploy_decision).
"""
from __future__ import annotations

import math
from typing import Any

from tune_serve.serving.deploy_decision import ALREADY_PUBLISHED
from tune_serve.workflow import failures, leaderboard, task_ids


def _number(value: Any) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return str(value)
    return f"{value:,.1f}" if abs(value) < 1e6 else f"{value:,.0f}"


def _task(summary: dict) -> str:
    """"binary, " for a classifier (the task prepare recorded); nothing for a regression."""
    task = summary.get("task")
    return f"{task}, " if task in ("binary", "multiclass") else ""


def _metric(name: str, value: Any) -> str:
    """"MAE 411.9", "AUC 0.873", "accuracy 0.933": a classifier's scores are fractions."""
    if name == "mae":
        return f"MAE {_number(value)}"
    shown = f"{value:.3f}" if isinstance(value, (int, float)) and math.isfinite(value) else str(value)
    return f"{name if name == 'accuracy' else name.upper()} {shown}"


def failed_line(failure: dict) -> str:
    """"nothing deployed: prepare_data failed: exit status 2: error: --source: …": the first failed
    task and its own reason (tune_serve.workflow.summaries.cause)."""
    return f"nothing deployed: {failure.get('task')} failed: {failure.get('reason')}"


def text(summary: dict, evaluations: list[dict] | None = None) -> str:
    """`evaluations`: the full evaluation results (with `baseline`) when at hand, else the summary's."""
    evaluations = [e for e in (evaluations if evaluations is not None else summary.get("evaluations") or [])
                   if e]
    deployed = summary.get("deployed")
    # a retried deploy of a candidate another run's version has replaced since
    if (deployed and deployed.get("action") == ALREADY_PUBLISHED
            and deployed.get("serving_version") != deployed.get("version")):
        return f"nothing new deployed: {deployed.get('model_name')}: {deployed.get('reason')}"
    if deployed:
        rank = deployed.get("candidate_rank")
        evaluation = next((e for e in evaluations if e.get("rank") == rank), {})
        metric = (deployed.get("eval_metric") or {}).get("name") or "mae"
        value = (deployed.get("eval_metric") or {}).get("value", deployed.get("eval_mae"))
        baseline = ((evaluation.get("baseline") or {}).get("overall") or {}).get(metric)
        if baseline is not None:
            was = f", was {_metric(metric, baseline).split(' ', 1)[1]}"
        elif "baseline_model_path" in evaluation and not evaluation["baseline_model_path"]:
            was = ", first version"  # nothing was serving when it was evaluated
        else:
            was = ""  # the full evaluation is not at hand
        scored = f", {_metric(metric, value)}{was}" if value is not None else ""
        return (f"deployed {deployed.get('model_name')} v{deployed.get('version')} "
                f"({_task(summary)}candidate {rank}{scored})")
    refused = summary.get("deploy_refused")
    if refused:
        return f"nothing deployed: candidate {refused.get('candidate_rank')} refused: {refused.get('reason')}"
    failure = summary.get("failure")
    if isinstance(failure, dict) and failure.get("task"):
        return failed_line(failure)
    if summary.get("failed_steps"):
        return f"nothing deployed: failed steps: {', '.join(map(str, summary['failed_steps']))}"
    failures = summary.get("training_failures") or []
    failed = " | ".join(f"rank {f.get('rank')} training failed: {f.get('reason')}" for f in failures)
    if not evaluations:
        if failed:
            return f"nothing deployed: {failed}"
        if not summary.get("leaderboard"):
            return "nothing deployed: no candidate was trained (see aggregate_top_n)"
        return "nothing deployed: no candidate was evaluated"
    blessed = [e for e in evaluations if e.get("blessed")]
    if blessed:
        return ("nothing deployed: a candidate was blessed but its deployment did not complete "
                "(see serving.deploy_serving)")
    return "nothing deployed: " + " | ".join(
        [f"rank {e.get('rank')} not blessed: {'; '.join(leaderboard.reasons(e))}"
         for e in sorted(evaluations, key=lambda e: e.get("rank", 0))] + ([failed] if failed else []))


UNFINISHED = {"queued", "running"}


def outcome(summary: dict | None, evaluations: list[dict] | None, facts: dict | None,
            recorded: dict[str, dict] | None = None) -> str:
    """The line of any run, ended or not: what its summary says; a cancel (who marked the run
    failed, in Airflow's `facts`: tune_serve.web.note_listener.run_facts) unless it shipped; without a
    summary, the first failed task and its own reason (`recorded`: tune_serve.workflow.failures)."""
    recorded = recorded or {}
    if summary and not summary.get("deployed") and facts and facts.get("cancelled"):
        return failures.cancel_line(facts, recorded)
    if summary:
        return text(summary, evaluations or None)
    if facts is None:
        return "nothing deployed: no summary was recorded, and Airflow's records of the run could not be read"
    if facts.get("cancelled"):
        return failures.cancel_line(facts, recorded)
    first = failures.cause(facts.get("tasks") or {}, recorded)
    if first:
        return failed_line(first)
    if facts.get("state") in UNFINISHED:
        running = sorted((k for k, state in (facts.get("tasks") or {}).items()
                          if state in ("running", "deferred")), key=task_ids.run_order)
        now = f" (now: {', '.join(running)})" if running else ""
        return f"the run is {facts['state']}{now}: nothing decided yet"
    return f"nothing deployed: the run ended {facts.get('state')} without a summary and without a failed task"
