import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))
# Unit tests read settings from the environment only (no metadata DB to ask for Variables).
os.environ.setdefault("TUNE_SERVE_NO_VARIABLES", "1")
# Unit tests never touch a real installation's home or database.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / "var" / "test-airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _no_metadata_database(monkeypatch):
    """The run view asks Airflow's database for a run's state; unit tests have none (a test
    that needs Airflow's records passes them, or a session of its own)."""
    from tune_serve.web import airflow_runs

    monkeypatch.setattr(airflow_runs, "facts", lambda run_id, dag_id=None: None)
    monkeypatch.setattr(airflow_runs, "runs", lambda *args, **kwargs: None)


@pytest.fixture
def view_client():
    """`view_client(**TestClient options)`: the run view's app as a user the auth manager lets read
    task logs (that check itself is tested in test_artifacts_auth.py). The artifact viewer's app
    gets the same answer, for the view's links into it."""
    from fastapi.testclient import TestClient

    from tune_serve.web import artifacts
    from tune_serve.web.ui import app as view

    apps = (view.app, artifacts.app)
    for app in apps:
        app.dependency_overrides[artifacts.require_task_log_access] = lambda: None
    yield lambda **options: TestClient(view.app, **options)
    for app in apps:
        app.dependency_overrides.clear()
