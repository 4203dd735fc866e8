"""Writes each tune_train_serve run's note when the run ends: what it deployed, or why nothing.

A task cannot set its own run's note in Airflow 3: the Task SDK's execution API takes a note
only when it triggers a run (`TriggerDAGRunPayload.note`), and the REST API's
`PATCH .../dagRuns/{run_id}` needs credentials a pod should not hold. A listener plugin runs
where the run's state changes (scheduler, or the API server when a user marks a run), on the
run's own ORM object, so the note is saved with the run's final state. Its source is the run's
`summary.json` (written by `summarize` whether the run succeeds or fails; docs/contracts.md).
A note the user wrote at trigger time is kept: the line is added below it.
"""
from __future__ import annotations

import json
import logging

from airflow.listeners import hookimpl

from tune_contract import layout
from tune_serve import plan, run_note
from tune_serve.client import DAG_ID

log = logging.getLogger(__name__)


def _read(run_id: str, *parts: str) -> dict | None:
    from airflow.sdk import ObjectStoragePath

    uri = layout.join(plan.run_root(run_id), *parts)
    path = ObjectStoragePath(uri if "://" in uri else f"file://{uri}")
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, ValueError) as exc:
        log.warning("run %s: cannot read %s for its note: %s", run_id, path, exc)
        return None


def note_for(run_id: str, existing: str | None) -> str | None:
    """The run's note with the outcome line added; None when there is nothing to add."""
    summary = _read(run_id, layout.SUMMARY_FILE)
    if summary:
        # the full evaluations carry the serving baseline's metrics ("was ..."); the summary does not
        evaluations = [_read(run_id, layout.EVAL_DIR, str(e["rank"]), layout.EVALUATION_FILE) or e
                       for e in summary.get("evaluations") or [] if e]
        line = run_note.text(summary, evaluations)
    else:
        line = "nothing deployed: the run ended before summarize recorded it"
    existing = (existing or "").strip()
    if line in existing:
        return None
    return f"{existing}\n\n{line}" if existing else line


def _write(dag_run) -> None:
    if dag_run.dag_id != DAG_ID:
        return
    note = note_for(dag_run.run_id, dag_run.note)
    if note is not None:
        dag_run.note = note  # saved with the run's state by the caller's session
        log.info("run %s: note %r", dag_run.run_id, note)


@hookimpl
def on_dag_run_success(dag_run, msg: str):
    _write(dag_run)


@hookimpl
def on_dag_run_failed(dag_run, msg: str):
    _write(dag_run)
