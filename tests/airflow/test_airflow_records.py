"""Airflow's own records of a run, read through its models (tune_serve.web.airflow_runs): the task
states, and who marked the run failed, from the audit log the REST API writes."""
import json
from datetime import UTC, datetime

import pytest


@pytest.fixture(scope="module")
def session():
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    import_all_models()
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session


def add_run(session, run_id, state="failed", start=None, end=None, run_type="manual", user="admin", conf=None):
    from airflow.models.dagrun import DagRun

    start = start or datetime(2026, 12, 7, 10, tzinfo=UTC)
    session.execute(DagRun.__table__.insert().values(
        dag_id="tune_train_serve", run_id=run_id, state=state, run_type=run_type, run_after=start,
        start_date=start, end_date=end, triggering_user_name=user, conf=conf or {}, clear_number=0))


def add_ti(session, run_id, task_id, state, map_index=-1):
    import uuid

    from airflow.models.taskinstance import TaskInstance

    session.execute(TaskInstance.__table__.insert().values(
        id=uuid.uuid4(), dag_id="tune_train_serve", run_id=run_id, task_id=task_id, map_index=map_index, state=state,
        pool="default_pool", pool_slots=1, try_number=1, max_tries=1))


def test_the_facts_name_the_task_states_and_who_cancelled(session):
    from airflow.models.log import Log

    from tune_serve.web import airflow_runs

    add_run(session, "cancelled")
    for task_id, state, index in [("validate_params", "success", -1), ("tuning.tune", "failed", 0),
                                  ("tuning.tune", "failed", 1), ("tuning.wait_oracle", "failed", -1),
                                  ("aggregate_top_n", "skipped", -1)]:
        add_ti(session, "cancelled", task_id, state, index)
    session.add(Log(event="patch_dag_run", owner="admin", owner_display_name="Ada Admin", dag_id="tune_train_serve",
                    run_id="cancelled", extra=json.dumps({"state": "failed", "method": "PATCH"})))
    session.add(Log(event="patch_dag_run", owner="bob", dag_id="tune_train_serve", run_id="cancelled",
                    extra=json.dumps({"note": "hi", "method": "PATCH"})))  # a note, not a cancel
    session.flush()
    facts = airflow_runs.run_facts(session, "tune_train_serve", "cancelled")
    assert facts["state"] == "failed"
    assert facts["tasks"] == {"validate_params": "success", "tuning.tune_0": "failed", "tuning.tune_1": "failed",
                              "tuning.wait_oracle": "failed", "aggregate_top_n": "skipped"}
    assert facts["cancelled"]["by"] == "Ada Admin"
    add_run(session, "plain")
    add_ti(session, "plain", "prepare_data", "failed")
    assert airflow_runs.run_facts(session, "tune_train_serve", "plain")["cancelled"] is None
    assert airflow_runs.run_facts(session, "tune_train_serve", "never") is None
