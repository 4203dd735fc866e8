"""What a run decided, in one record (`{run_root}/summary.json`)."""
from __future__ import annotations

from typing import Any

from tune_serve import leaderboard, task_ids

FAILED = {"failed", "upstream_failed"}
# A tuner lost for good is survivable: its trials were handed to the others by the chief.
TOLERATED = {task_ids.TUNE, task_ids.STOP_ORACLE, task_ids.SUMMARIZE}


def failed_steps(states: dict[str, str | None]) -> list[str]:
    """Task ids (mapped ones as `task_{index}`) that failed and make the run a failure."""
    return sorted(task for task, state in states.items()
                  if state in FAILED and task_ids.unmapped(task) not in TOLERATED)


def build(plan: dict, top: Any, evaluations: Any, deployed: Any, states: dict[str, str | None]) -> dict:
    lost_tuners = sorted(t for t, s in states.items() if task_ids.unmapped(t) == task_ids.TUNE and s in FAILED)
    evaluations = [{**{k: e.get(k) for k in ("rank", "blessed", "failed_thresholds", "overall", "model_path",
                                             "report", "task", "headline")}, "reasons": leaderboard.reasons(e)}
                   for e in (evaluations or []) if e]
    # the task the feature spec records (prepare's inference when the plan said auto)
    task = next((e["task"] for e in evaluations if e.get("task")), plan.get("task"))
    return {
        "run_id": plan["run_id"],
        "model_name": plan["model_name"],
        "task": task,
        "leaderboard": top,
        "evaluations": evaluations,
        "deployed": deployed,
        "outcome": outcome(deployed, evaluations),
        "lost_tuner_tasks": lost_tuners,
        "failed_steps": failed_steps(states),
    }


def outcome(deployed: Any, evaluations: list[dict]) -> str:
    """What the run changed in serving, in one line (the last line of `summarize`'s log)."""
    if deployed:
        return (f"deployed version {deployed.get('version')} of {deployed.get('model_name')} "
                f"(candidate rank {deployed.get('candidate_rank')})")
    if any(e.get("blessed") for e in evaluations):
        return "nothing deployed: a candidate was blessed but its deployment did not complete (see serving.deploy_serving)"
    return leaderboard.nothing_deployed(evaluations)
