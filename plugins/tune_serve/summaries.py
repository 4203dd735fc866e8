"""What a run decided, in one record (`{run_root}/summary.json`)."""
from __future__ import annotations

from typing import Any

from tune_serve import task_ids

FAILED = {"failed", "upstream_failed"}
# A tuner lost for good is survivable: its trials were handed to the others by the chief.
TOLERATED = {task_ids.TUNE, task_ids.STOP_ORACLE, task_ids.SUMMARIZE}


def failed_steps(states: dict[str, str | None]) -> list[str]:
    """Task ids (mapped ones as `task_{index}`) that failed and make the run a failure."""
    return sorted(task for task, state in states.items()
                  if state in FAILED and task_ids.unmapped(task) not in TOLERATED)


def build(plan: dict, top: Any, evaluations: Any, deployed: Any, states: dict[str, str | None]) -> dict:
    lost_tuners = sorted(t for t, s in states.items() if task_ids.unmapped(t) == task_ids.TUNE and s in FAILED)
    return {
        "run_id": plan["run_id"],
        "model_name": plan["model_name"],
        "leaderboard": top,
        "evaluations": [{k: e.get(k) for k in ("rank", "blessed", "failed_thresholds", "overall",
                                                "model_path", "report")}
                        for e in (evaluations or []) if e],
        "deployed": deployed,
        "lost_tuner_tasks": lost_tuners,
        "failed_steps": failed_steps(states),
    }
