"""Why a task of a run failed, in one line, kept with the run: `{run_root}/failures/{key}.json`.

Airflow 3 keeps a task's exception only in its log (a task instance has no column for it), so
the DAG's `on_failure_callback` (every task's, from `default_args`) writes the task's own
one-line reason next to the run's artifacts when it fails for good (a retried try writes
nothing): `{"task_id", "map_index", "key", "try_number", "reason", "at"}`. `key` is the task's
key in `get_task_states` (`task_id`, or `task_id_{map_index}` for a mapped task). `summarize`,
the run note and the run view read these. A task stopped from outside (its run marked failed,
its worker lost) writes none: its reason is `STOPPED`.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from tune_contract import layout
from tune_serve.workflow import task_ids

log = logging.getLogger(__name__)

FOLDER = "failures"
MAX_REASON = 500
STOPPED = ("stopped from outside, with no reason of its own (the run was marked failed, or its worker "
           "was lost)")
SKIPPED = "skipped with nothing to skip it: the run was marked failed (or success) while the task waited"


def key(task_id: str, map_index: int | None) -> str:
    return task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"


def one_line(error: BaseException | str | None) -> str:
    """The reason as one line: a multi-line message (`invalid run parameters:` and one `- rule`
    per line) becomes `head: rule; rule`; an exception that is not Airflow's (a bug) keeps its type."""
    text = str(error) if error is not None else ""
    lines = [line.strip().removeprefix("- ").strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__ if isinstance(error, BaseException) else "no reason given"
    head, rest = lines[0], lines[1:]
    line = f"{head.rstrip(':')}: {'; '.join(rest)}" if rest else head
    if isinstance(error, BaseException) and not _airflows(error):
        line = f"{type(error).__name__}: {line}"
    return line if len(line) <= MAX_REASON else line[:MAX_REASON - 1] + "…"


def _airflows(error: BaseException) -> bool:
    return any(cls.__module__.startswith(("airflow.", "tune_serve.")) for cls in type(error).__mro__[:-2])


def folder(run_root: str) -> str:
    return layout.join(run_root, FOLDER)


def record(context: Any) -> None:
    """`on_failure_callback`: the failed task's reason into its run's folder. Never raises."""
    try:
        from tune_serve import storage
        from tune_serve.workflow import plan

        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        entry = {"task_id": ti.task_id, "map_index": map_index, "key": key(ti.task_id, map_index),
                 "try_number": getattr(ti, "try_number", None), "reason": one_line(context.get("exception")),
                 "at": time.time()}
        path = storage.path(layout.join(folder(plan.run_root(ti.run_id)), f"{entry['key']}.json"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entry))
    except Exception as exc:  # the task has failed already: its own reason is in its log
        log.warning("the failure's reason was not recorded: %s", exc)


def read(run_root: str, opener=None) -> dict[str, dict]:
    """The recorded failures of a run by key; what cannot be read is left out. `opener` maps a
    URI to a path (the run view's `resolve`, which keeps to the storage root)."""
    if opener is None:
        from tune_serve import storage

        opener = storage.path
    found: dict[str, dict] = {}
    try:
        directory = opener(folder(run_root))
        if not directory.exists():
            return found
        for item in directory.iterdir():
            if not str(item).endswith(".json"):
                continue
            try:
                entry = json.loads(item.read_text())
            except (OSError, ValueError):
                continue
            if (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("reason"), str)):
                found[entry["key"]] = entry
    except Exception as exc:  # storage out of reach: the readers say less, never fail
        log.warning("failures of %s unreadable: %s", run_root, exc)
    return found


def cause(states: dict[str, str | None], recorded: dict[str, dict] | None = None) -> dict | None:
    """The failed run's first failed task and its one-line reason: `{"task", "reason"}`.

    First: the earliest reason a task recorded (a tuner's bad input comes before the search it
    starved); with none recorded, the first failed task in the run's order (one stopped from
    outside records nothing), a step that matters before a tolerated one."""
    recorded = recorded or {}
    failed = [k for k, state in states.items()
              if state == "failed" and task_ids.unmapped(k) != task_ids.SUMMARIZE]
    reasons = sorted((recorded[k] for k in failed if k in recorded), key=lambda f: f.get("at") or 0)
    if reasons:
        return {"task": reasons[0]["key"], "reason": reasons[0]["reason"]}
    if not failed:
        return None
    first = min(failed, key=lambda k: (task_ids.unmapped(k) in task_ids.TOLERATED, task_ids.run_order(k)))
    return {"task": first, "reason": STOPPED}


def cancel_line(facts: dict, recorded: dict[str, dict]) -> str:
    """"cancelled by admin during tuning.tune, tuning.wait_oracle: nothing deployed (stopped: …)":
    who marked the run failed (Airflow's audit log) and the tasks that were running then (failed
    with no reason of their own)."""
    tasks = facts.get("tasks") or {}
    at = (facts.get("cancelled") or {}).get("at")

    # a reason the task recorded before the cancel (not one of being killed)
    def own_failure(name: str) -> bool:
        when = (recorded.get(name) or {}).get("at")
        return name in recorded and (at is None or not isinstance(when, (int, float)) or when < at)

    stopped = sorted((k for k, state in tasks.items() if state == "failed" and not own_failure(k)
                      and task_ids.unmapped(k) != task_ids.SUMMARIZE), key=task_ids.run_order)
    during: list[str] = []
    for name in stopped:
        if task_ids.unmapped(name) not in during:
            during.append(task_ids.unmapped(name))
    by = (facts.get("cancelled") or {}).get("by")
    line = f"cancelled{f' by {by}' if by else ''} " + (f"during {', '.join(during)}" if during else
                                                     "while no task was running")
    # the same words when the run is marked and when it ends (the teardowns' states change in between)
    return line + ": nothing deployed" + (f" (stopped: {', '.join(stopped)})" if stopped else "")
