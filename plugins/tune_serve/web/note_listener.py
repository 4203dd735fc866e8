"""Writes each tune_train_serve run's note when the run ends: what it deployed, or why nothing.

A task cannot set its own run's note in Airflow 3: the Task SDK's execution API takes a note
only when it triggers a run (`TriggerDAGRunPayload.note`), and the REST API's
`PATCH .../dagRuns/{run_id}` needs credentials a pod should not hold. A listener plugin runs
where the run's state changes (scheduler, or the API server when a user marks a run).

The listener is called inside the scheduler's own transaction, on the scheduler's DagRun
object: it must not touch that object's unloaded attributes (its note lives in another table)
nor the thread's database session (reading a setting from an Airflow Variable there detached
the scheduler's objects, and the scheduler then failed to finish every later run). So it only
notes the run's ids and writes the note from a thread of its own, in its own session, once
the scheduler's transaction lets it. Its sources are the run's `summary.json` (written by
`summarize` whether the run succeeds or fails; docs/contracts.md), the failed tasks' own reasons
(`tune_serve.workflow.failures`) and, read in the thread's own session, Airflow's records of the run: its
task instances (which failed first, when there is no summary) and the audit log (who marked the
run failed: a cancel). A note the user wrote at trigger time is kept: the line is added below it.
"""
from __future__ import annotations

import json
import logging
import threading
import time

from airflow.listeners import hookimpl

from tune_contract import layout
from tune_serve import storage
from tune_serve.config import DAG_ID
from tune_serve.web import airflow_runs
from tune_serve.workflow import failures, plan, run_note

log = logging.getLogger(__name__)


def _read(run_id: str, *parts: str) -> dict | None:
    path = storage.path(layout.join(plan.run_root(run_id), *parts))
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as exc:
        log.warning("run %s: cannot read %s for its note: %s", run_id, path, exc)
        return None


def outcome(run_id: str, facts: dict | None) -> tuple[str, list[str]]:
    """The run's outcome line (`run_note.outcome`) and how its search ran."""
    summary = _read(run_id, layout.SUMMARY_FILE)
    # the full evaluations carry the serving baseline's metrics ("was ..."); the summary does not
    evaluations = [_read(run_id, layout.EVAL_DIR, str(e["rank"]), layout.EVALUATION_FILE) or e
                   for e in (summary or {}).get("evaluations") or [] if e]
    line = run_note.outcome(summary, evaluations, facts, failures.read(plan.run_root(run_id)))
    return line, [str(note) for note in (summary or {}).get("search") or []]


def note_for(run_id: str, existing: str | None, facts: dict | None = None) -> str | None:
    """The run's note with the outcome line (and how the search ran) added; None when there is
    nothing to add."""
    line, search = outcome(run_id, facts)
    # how the search ran (early stopping, a warm start or why not): decisions the runs list shows too
    if search:
        line += "\n\n" + " · ".join(search)
    existing = (existing or "").strip()
    if line in existing:
        return None
    return f"{existing}\n\n{line}" if existing else line


def save_note(dag_id: str, run_id: str, attempts: int = 10, settle_seconds: float = 3.0) -> str | None:
    """Add the outcome line to the run's note once the caller's transaction has had time to
    end; checked on the next pass and written again if it is not there.

    Sessions here are not the thread's scoped one: reading a setting (an Airflow Variable)
    opens and closes the thread's scoped session, which would detach a run loaded in it and
    turn the write into nothing. So: read the note, work out the line, then write, each apart."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    def load(session):
        return session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))

    for attempt in range(1, attempts + 1):
        time.sleep(settle_seconds)
        try:
            with create_session(scoped=False) as session:
                run = load(session)
                if run is None:
                    return None
                existing = run.note
                facts = airflow_runs.run_facts(session, dag_id, run_id)
            note = note_for(run_id, existing, facts)  # may read settings: outside any session of ours
            if note is None:  # the line is in place
                return existing
            with create_session(scoped=False) as session:
                run = load(session)
                if run is None:
                    return None
                run.note = note
            log.info("run %s: note %r (attempt %d)", run_id, note, attempt)
        except Exception as exc:  # a busy or restarting database: try again, never fail the caller
            log.warning("run %s: note not written (attempt %d of %d): %s", run_id, attempt, attempts, exc)
    log.warning("run %s: its note could not be written", run_id)
    return None


def _write(dag_run) -> None:
    dag_id, run_id = dag_run.dag_id, dag_run.run_id  # loaded with the run: no database access
    if dag_id != DAG_ID:
        return
    threading.Thread(target=save_note, args=(dag_id, run_id), name=f"tune-serve-note-{run_id}",
                     daemon=True).start()


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    _write(dag_run)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    _write(dag_run)
