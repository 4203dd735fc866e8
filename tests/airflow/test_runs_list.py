"""Issue 28: the runs list (GET /runs, the DAG's "Tuning runs" tab): one row per run, newest
first, with its state, outcome, best objective, deployed version and its label now, data rows,
duration, trigger and user; sortable, failed runs marked, each linked to its view, paged by
Airflow's database so a page costs one query and a summary.json per row, whatever the number of runs."""
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from test_airflow_records import add_run

from tune_serve.web import airflow_runs
from tune_serve.web.ui import run_state
from tune_serve.workflow import summaries

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)


@pytest.fixture(scope="module")
def session():
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session
    from sqlalchemy.pool import StaticPool

    import_all_models()
    # the view's routes run in a thread pool: one connection, shared
    engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        for i in range(120):  # older runs: scheduled, 10 min each but the slowest
            add_run(session, f"scheduled__{i:03d}", state="success", start=T0 + timedelta(hours=i),
                    end=T0 + timedelta(hours=i, minutes=10 if i != 7 else 50), run_type="scheduled", user=None)
        add_run(session, "deployed", state="success", start=T0 + timedelta(days=10),
                end=T0 + timedelta(days=10, minutes=12), user="ada")
        add_run(session, "refused", state="failed", start=T0 + timedelta(days=11),
                end=T0 + timedelta(days=11, seconds=9), user="bob")
        add_run(session, "cancelled", state="failed", start=T0 + timedelta(days=12),
                end=T0 + timedelta(days=12, minutes=3), user="ada", run_type="asset_triggered")
        add_run(session, "running", state="running", start=datetime.now(UTC) - timedelta(minutes=2), user="cy")
        from airflow.models.dagrun import DagRun, DagRunNote
        from sqlalchemy import select

        run = session.scalar(select(DagRun.id).where(DagRun.run_id == "cancelled"))
        session.execute(DagRunNote.__table__.insert().values(
            dag_run_id=run, content="retune\n\ncancelled by ada during tuning.tune, tuning.wait_oracle: nothing "
                                    "deployed (stopped: tuning.tune_0, tuning.wait_oracle)",
            created_at=T0, updated_at=T0))
        session.flush()
        yield session


def test_the_database_pages_and_sorts_the_runs(session):
    total, rows = airflow_runs.runs_page(session, limit=50)
    assert total == 124 and len(rows) == 50
    assert [r["run_id"] for r in rows[:5]] == ["running", "cancelled", "refused", "deployed", "scheduled__119"]
    assert rows[1]["trigger"] == "asset" and rows[3]["trigger"] == "manual" and rows[4]["trigger"] == "scheduled"
    assert rows[3]["user"] == "ada" and rows[3]["seconds"] == 720 and rows[0]["seconds"] is None
    assert rows[1]["note"].startswith("retune")
    _, last = airflow_runs.runs_page(session, offset=100, limit=50)
    assert len(last) == 24 and last[-1]["run_id"] == "scheduled__000"
    _, slowest = airflow_runs.runs_page(session, sort="duration", descending=True, limit=2)
    assert [r["run_id"] for r in slowest] == ["scheduled__007", "deployed"]
    _, failed = airflow_runs.runs_page(session, sort="state", descending=False, limit=2)
    assert {r["state"] for r in failed} == {"failed"}
    _, by_user = airflow_runs.runs_page(session, sort="user", descending=True, limit=1)
    assert by_user[0]["user"] == "cy"


@pytest.fixture
def client(session, tmp_path, monkeypatch, view_client):
    root = tmp_path / "storage"
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(root))
    serving = tmp_path / "serving"
    serving.mkdir()
    (serving / "diamonds.config.json").write_text(json.dumps({"version_labels": {"stable": 4, "canary": 5}}))
    monkeypatch.setenv("TUNE_SERVE_SERVING_ROOT", str(serving))
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "local")
    from tune_serve import config
    config.backend.cache_clear()
    monkeypatch.setattr(airflow_runs, "runs", lambda *args: airflow_runs.runs_page(session, "tune_train_serve", *args))

    def write(run_id, summary):
        (root / "runs" / run_id).mkdir(parents=True)
        (root / "runs" / run_id / "summary.json").write_text(json.dumps(summary))

    deployed = summaries.build({"run_id": "deployed", "model_name": "diamonds"}, [], [], {
        "model_name": "diamonds", "version": 4, "candidate_rank": 0, "eval_mae": 411.9}, {},
        search={"trials": [{"trial_id": "2", "objective": 405.25}], "objective": {"name": "val_mae"}},
        prepared={"train_examples": 1200, "eval_examples": 300})
    write("deployed", deployed)
    write("refused", summaries.build(summaries.unplanned("refused", {"model_name": "diamonds"}), None, None, None,
                                     {"validate_params": "failed"}, failures={"validate_params": {
                                         "key": "validate_params", "reason": "invalid run parameters: top_n (5) "
                                                                             "must be at most max_trials (3)"}}))
    yield view_client()
    config.backend.cache_clear()


def test_the_list_shows_each_runs_outcome_newest_first(client):
    text = client.get("/runs").text
    ids = re.findall(r'<tr data-run-id="([^"]+)"', text)
    assert ids[:4] == ["running", "cancelled", "refused", "deployed"] and len(ids) == 50
    row = {run_id: re.search(rf'<tr data-run-id="{re.escape(run_id)}".*?</tr>', text, re.S).group(0)
           for run_id in ids[:4]}
    assert "diamonds v4 (stable)" in row["deployed"] and "val_mae 405.2" in row["deployed"]
    assert "1,200 train / 300 eval" in row["deployed"] and "12 min 0 s" in row["deployed"]
    assert "deployed diamonds v4 (candidate 0, MAE 411.9)" in row["deployed"] and ">ada<" in row["deployed"]
    assert 'class="failed"' in row["refused"] and "✗ failed" in row["refused"]
    assert "validate_params failed: invalid run parameters: top_n (5) must be at most max_trials (3)" in row["refused"]
    assert "cancelled by ada during tuning.tune" in row["cancelled"] and ">asset<" in row["cancelled"]
    assert "running for 2 min" in row["running"] and "nothing decided yet" in row["running"]
    assert 'href="runs/deployed"' in row["deployed"]
    assert "Page 1 of 3 (124 runs)" in text and "page=2" in text


def test_the_list_sorts_and_pages(client):
    text = client.get("/runs", params={"sort": "duration", "desc": 1}).text
    assert re.findall(r'<tr data-run-id="([^"]+)"', text)[:2] == ["scheduled__007", "deployed"]
    older = client.get("/runs", params={"page": 3}).text
    assert re.findall(r'<tr data-run-id="([^"]+)"', older)[-1] == "scheduled__000" and "Page 3 of 3" in older


def test_a_page_reads_one_summary_per_row_whatever_the_number_of_runs(client, monkeypatch):
    reads = []
    real = run_state.read_mapping
    monkeypatch.setattr(run_state, "read_mapping", lambda uri: reads.append(uri) or real(uri))
    client.get("/runs")
    assert len(reads) == 50
