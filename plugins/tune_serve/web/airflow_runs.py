"""What Airflow itself recorded of tune_train_serve's runs, read through its own models in a
session of the caller's (the note listener's thread) or of our own (the run view, in the API
server): a run's state, its task instances' states and who marked it failed (the audit log).
Tasks never call this: the Task SDK gives them no database."""
from __future__ import annotations

import json
import logging
from typing import Any

from tune_serve.config import DAG_ID
from tune_serve.workflow import failures

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


# The runs list's columns Airflow's database sorts (the rest live in each run's summary.json)
SORTS = ("started", "state", "duration", "trigger", "user", "run_id")
TRIGGERS = {"manual": "manual", "scheduled": "scheduled", "asset_triggered": "asset", "backfill": "backfill",
            "operator_triggered": "another DAG", "asset_materialization": "asset"}


def _duration(dialect: str):
    """A finished run's seconds, in SQL (null while it runs)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import func, literal_column

    if dialect == "sqlite":
        return (func.julianday(DagRun.end_date) - func.julianday(DagRun.start_date)) * 86400.0
    if dialect == "postgresql":
        return func.extract("epoch", DagRun.end_date - DagRun.start_date)
    return func.timestampdiff(literal_column("SECOND"), DagRun.start_date, DagRun.end_date)


def runs_page(session, dag_id: str = DAG_ID, sort: str = "started", descending: bool = True, offset: int = 0,
              limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """One page of the DAG's runs, sorted and paged by the database (one indexed query and a
    count, whatever the number of runs): `(total, [{"run_id", "state", "trigger", "user",
    "started", "ended", "seconds", "note"}])`, times as Unix seconds."""
    from airflow.models.dagrun import DagRun, DagRunNote
    from sqlalchemy import func, select

    duration = _duration(session.get_bind().dialect.name)
    column = {"started": DagRun.run_after, "state": DagRun.state, "duration": duration,
              "trigger": DagRun.run_type, "user": DagRun.triggering_user_name,
              "run_id": DagRun.run_id}[sort if sort in SORTS else "started"]
    total = session.scalar(select(func.count()).select_from(DagRun).where(DagRun.dag_id == dag_id)) or 0
    order = column.desc() if descending else column.asc()
    rows = session.execute(
        select(DagRun.run_id, DagRun.state, DagRun.run_type, DagRun.triggering_user_name, DagRun.start_date,
               DagRun.end_date, DagRun.run_after, DagRunNote.content)
        .outerjoin(DagRunNote, DagRunNote.dag_run_id == DagRun.id)
        .where(DagRun.dag_id == dag_id)
        .order_by(order, DagRun.id.desc()).offset(max(offset, 0)).limit(limit)).all()
    return total, [{"run_id": run_id, "state": _text(state), "trigger": TRIGGERS.get(_text(run_type) or "",
                                                                                         _text(run_type)),
                    "user": user, "started": (start or after).timestamp() if (start or after) else None,
                    "ended": end.timestamp() if end else None,
                    "seconds": (end - start).total_seconds() if end and start else None, "note": note}
                   for run_id, state, run_type, user, start, end, after, note in rows]


def runs(sort: str = "started", descending: bool = True, offset: int = 0,
         limit: int = 50) -> tuple[int, list[dict[str, Any]]] | None:
    """`runs_page` in a session of our own; None when the database cannot be read."""
    try:
        from airflow.utils.session import create_session

        with create_session(scoped=False) as session:
            return runs_page(session, DAG_ID, sort, descending, offset, limit)
    except Exception as exc:
        log.warning("Airflow's records of the runs unreadable: %s", exc)
        return None
