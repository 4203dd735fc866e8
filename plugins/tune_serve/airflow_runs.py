"""What Airflow itself recorded of tune_train_serve's runs, read through its own models in a
session of the caller's (the note listener's thread) or of our own (the run view, in the API
server): a run's state, its task instances' states and who marked it failed (the audit log).
Tasks never call this: the Task SDK gives them no database."""
from __future__ import annotations

import json
import logging
from typing import Any

from tune_serve import failures
from tune_serve.client import DAG_ID

log = logging.getLogger(__name__)

# the audit log's event for PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id} (the REST API, and the
# UI's "mark as failed"); the bulk PATCH logs no run id, so a run marked that way shows no user
PATCH_EVENT = "patch_dag_run"


def run_facts(session, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """`{"state", "tasks": {key: state}, "cancelled": {"by", "at"} | None}`; None for an unknown
    run. A cancel is the audit log's last `patch_dag_run` of this run to state failed; `by` is the
    user Airflow recorded."""
    from airflow.models.dagrun import DagRun
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if state is None:
        return None
    rows = session.execute(select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    tasks = {failures.key(task_id, map_index): _text(ti_state) for task_id, map_index, ti_state in rows}
    cancelled = None
    for owner, display, dttm, extra in session.execute(
            select(Log.owner, Log.owner_display_name, Log.dttm, Log.extra)
            .where(Log.dag_id == dag_id, Log.run_id == run_id, Log.event == PATCH_EVENT)
            .order_by(Log.dttm.desc())).all():
        try:
            body = json.loads(extra or "{}")
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("state") == "failed":
            cancelled = {"by": display or owner or None, "at": dttm.timestamp() if dttm else None}
            break
    return {"state": _text(state), "tasks": tasks, "cancelled": cancelled}


def _text(state: Any) -> str | None:
    """An enum state as its value ("failed"), None as None."""
    return None if state is None else str(getattr(state, "value", state))


def facts(run_id: str, dag_id: str = DAG_ID) -> dict[str, Any] | None:
    """`run_facts` in a session of our own; None when the database cannot be read."""
    try:
        from airflow.utils.session import create_session

        with create_session(scoped=False) as session:
            return run_facts(session, dag_id, run_id)
    except Exception as exc:  # no metadata database here (a unit test) or a busy one: say less
        log.warning("Airflow's records of run %s unreadable: %s", run_id, exc)
        return None
