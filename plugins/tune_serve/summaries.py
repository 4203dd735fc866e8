"""What a run decided, in one record (`{run_root}/summary.json`)."""
from __future__ import annotations

import time
from typing import Any

from tune_serve import leaderboard, run_note, task_ids
from tune_serve.serving.deploy_decision import REFUSED

FAILED = {"failed", "upstream_failed"}
# A tuner lost for good is survivable: its trials were handed to the others by the chief.
TOLERATED = {task_ids.TUNE, task_ids.STOP_ORACLE, task_ids.SUMMARIZE}


def failed_steps(states: dict[str, str | None]) -> list[str]:
    """Task ids (mapped ones as `task_{index}`) that failed and make the run a failure."""
    return sorted(task for task, state in states.items()
                  if state in FAILED and task_ids.unmapped(task) not in TOLERATED)


def training_failures(trained: Any) -> list[dict]:
    """The candidates whose training failed with a reason (a diverged loss), best rank first."""
    return sorted(({"rank": t.get("rank"), "trial_id": t.get("trial_id"), "reason": str(t["failed"])}
                   for t in (trained or []) if t and t.get("failed")), key=lambda f: f["rank"] if f["rank"] is not None else -1)


def search_notes(search: Any) -> list[str]:
    """What the search decided that the user should know: its early stopping rule and what it
    pruned, and whether it started warm (from the chief's result)."""
    search = search or {}
    notes = []
    if search.get("early_stopping"):
        pruned = sum(1 for t in [*(search.get("trials") or []), *(search.get("incomplete") or [])] if t.get("pruned"))
        notes.append(f"early stopping: {search['early_stopping']}; {pruned} trial(s) pruned")
    if search.get("warm_start"):
        notes.append(str(search["warm_start"].get("note")))
    return notes


def build(plan: dict, top: Any, evaluations: Any, deployed: Any, states: dict[str, str | None],
          trained: Any = None, search: Any = None) -> dict:
    lost_tuners = sorted(t for t, s in states.items() if task_ids.unmapped(t) == task_ids.TUNE and s in FAILED)
    full = [e for e in (evaluations or []) if e]  # with the serving baseline's metrics ("was ...")
    evaluations = [{**{k: e.get(k) for k in ("rank", "blessed", "failed_thresholds", "overall", "model_path",
                                             "report", "task", "headline")}, "reasons": leaderboard.reasons(e)}
                   for e in full]
    # the task the feature spec records (prepare's inference when the plan said auto)
    task = next((e["task"] for e in evaluations if e.get("task")), plan.get("task"))
    refused = ({"candidate_rank": deployed.get("candidate_rank"), "reason": deployed.get("reason")}
               if isinstance(deployed, dict) and deployed.get("action") == REFUSED else None)
    summary = {
        "run_id": plan["run_id"],
        "finished_at": time.time(),  # the newest successful run of a model seeds the next (warm start)
        "model_name": plan["model_name"],
        "task": task,
        "leaderboard": top,
        "search": search_notes(search),
        "training_failures": training_failures(trained),
        "evaluations": evaluations,
        # a refused deployment (a stale verdict, tune_serve.serving.deploy_decision) shipped nothing
        "deployed": None if refused else deployed,
        "deploy_refused": refused,
        "lost_tuner_tasks": lost_tuners,
        "failed_steps": failed_steps(states),
    }
    # the same sentence as the run note and the run view's banner: one place words it
    summary["outcome"] = run_note.text(summary, full)
    return summary
