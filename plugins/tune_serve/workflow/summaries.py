"""What a run decided, in one record (`{run_root}/summary.json`)."""
from __future__ import annotations

import time
from typing import Any

from tune_serve.serving.deploy_decision import REFUSED
from tune_serve.workflow import failures as failure_records
from tune_serve.workflow import leaderboard, run_note, task_ids

FAILED = {"failed", "upstream_failed"}
TOLERATED = task_ids.TOLERATED


def failed_steps(states: dict[str, str | None]) -> list[str]:
    """Task ids (mapped ones as `task_{index}`) that failed and make the run a failure."""
    return sorted(task for task, state in states.items()
                  if state in FAILED and task_ids.unmapped(task) not in TOLERATED)


def stopped(states: dict[str, str | None], upstream: dict[str, set[str]], may_skip: set[str]) -> list[str]:
    """Tasks skipped with nothing to skip them: no upstream task was skipped and the task does
    not skip itself (`may_skip`). Airflow skips every task still waiting when a run is marked
    failed (a cancel between two tasks); nothing else in this DAG does."""
    skipped_tasks = {task_ids.unmapped(k) for k, state in states.items() if state == "skipped"}
    found = [k for k, state in states.items()
             if state == "skipped" and k not in may_skip | {task_ids.SUMMARIZE}
             and not (upstream.get(task_ids.unmapped(k), set()) & skipped_tasks)]
    return sorted(found, key=task_ids.run_order)


def may_skip(plan: Any, evaluations: Any) -> set[str]:
    """The state keys of the tasks that skip themselves in this run: a mapped task over an empty
    list (no candidate trained or left to evaluate: its one unexpanded instance, keyed by its task
    id; an expanded instance skipped is not), aggregate_top_n for a benchmark objective,
    select_model when no candidate was blessed."""
    allowed = {task_ids.TRAIN, task_ids.EVALUATE}
    if isinstance(plan, dict) and plan.get("objective_function"):
        allowed.add(task_ids.AGGREGATE_TOP_N)
    if not any(isinstance(e, dict) and e.get("blessed") for e in evaluations or []):
        allowed.add(task_ids.SELECT_MODEL)
    return allowed


def unplanned(run_id: str, params: Any) -> dict:
    """What a summary needs of a run whose parameters validate_params refused (there is no plan)."""
    name = (params or {}).get("model_name") if hasattr(params, "get") else None
    return {"run_id": run_id, "model_name": name if isinstance(name, str) else None}


def best(search: Any, top: Any) -> dict | None:
    """The search's best trial: `{"objective", "direction", "value", "trial_id"}` (the runs list's column)."""
    search = search if isinstance(search, dict) else {}
    trials = [t for t in search.get("trials") or [] if isinstance(t, dict) and t.get("objective") is not None]
    ranked = trials or [t for t in top or [] if isinstance(t, dict) and t.get("objective") is not None]
    if not ranked:
        return None
    objective = search.get("objective") or {}
    return {"objective": objective.get("name"), "direction": objective.get("direction"),
            "value": ranked[0]["objective"], "trial_id": ranked[0].get("trial_id")}


def data_rows(prepared: Any) -> dict | None:
    """The examples prepare wrote (train and eval)."""
    if not isinstance(prepared, dict) or prepared.get("train_examples") is None:
        return None
    return {"train": prepared.get("train_examples"), "eval": prepared.get("eval_examples")}


def training_failures(trained: Any) -> list[dict]:
    """The candidates whose training failed with a reason (a diverged loss), best rank first."""
    return sorted(({"rank": t.get("rank"), "trial_id": t.get("trial_id"), "reason": str(t["failed"])}
                   for t in (trained or []) if t and t.get("failed")),
                  key=lambda f: f["rank"] if f["rank"] is not None else -1)


def search_notes(search: Any) -> list[str]:
    """What the search decided that the user should know: its early stopping rule and what it
    pruned, and whether it started warm (from the chief's result)."""
    search = search or {}
    notes = []
    if search.get("early_stopping"):
        pruned = sum(1 for t in [*(search.get("trials") or []), *(search.get("incomplete") or [])]
                     if t.get("pruned"))
        notes.append(f"early stopping: {search['early_stopping']}; {pruned} trial(s) pruned")
    if search.get("warm_start"):
        notes.append(str(search["warm_start"].get("note")))
    return notes


def build(plan: dict, top: Any, evaluations: Any, deployed: Any, states: dict[str, str | None],
          trained: Any = None, search: Any = None, failures: dict[str, dict] | None = None,
          prepared: Any = None, skipped_from_outside: list[str] | None = None) -> dict:
    lost_tuners = sorted(t for t, s in states.items()
                         if task_ids.unmapped(t) == task_ids.TUNE and s in FAILED)
    full = [e for e in (evaluations or []) if e]  # with the serving baseline's metrics ("was ...")
    evaluations = [{**{k: e.get(k) for k in ("rank", "blessed", "failed_thresholds", "overall", "model_path",
                                             "report", "task", "headline")},
                    "reasons": leaderboard.reasons(e)}
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
        # skipped by a cancel while they waited (`stopped`): the run failed as well
        "stopped": list(skipped_from_outside or []),
        "best": best(search, top),
        "data_rows": data_rows(prepared),
    }
    # why the run failed: its first failed task and that task's own one-line reason
    summary["failure"] = failure_records.cause(states, failures) if summary["failed_steps"] else None
    if summary["failure"] is None and summary["stopped"]:
        summary["failure"] = {"task": summary["stopped"][0], "reason": failure_records.SKIPPED}
    # the same sentence as the run note and the run view's banner: one place words it
    summary["outcome"] = run_note.text(summary, full)
    return summary
