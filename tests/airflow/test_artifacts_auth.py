"""Who may use the artifact viewer, through a real Airflow API server (the plugin mounted by
Airflow itself) with the simple auth manager's users and roles on: real logins, real JWTs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from private_airflow import free_port  # noqa: E402

# `nobody` has no role: a real, logged-in user the auth manager grants nothing.
USERS = {"viewer": ("VIEWER", "viewer-pw"), "nobody": ("", "nobody-pw")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """An API server alone (no scheduler needed to authorise), on a fresh metadata DB."""
    base = tmp_path_factory.mktemp("auth")
    report = base / "storage" / "runs" / "r" / "eval" / "0" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<h1>rank 0</h1>")
    (base / "passwords.json").write_text(json.dumps({name: pw for name, (_, pw) in USERS.items()}))
    port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(base / "airflow"),
        "AIRFLOW_PORT": str(port),
        "TUNE_SERVE_STORAGE_ROOT": str(base / "storage"),
        "TUNE_SERVE_NO_VARIABLES": "1",
    }
    # airflow-env.sh makes everyone admin for the loopback stack; this server turns users on.
    script = (f'source "{REPO}/scripts/airflow-env.sh"'
              " && export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=False AIRFLOW__API__WORKERS=1"
              f" AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS='{','.join(f'{n}:{r}' for n, (r, _) in USERS.items())}'"
              f" AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE='{base / 'passwords.json'}'"
              " && mkdir -p $AIRFLOW_HOME && airflow db migrate > $AIRFLOW_HOME/migrate.log 2>&1"
              " && exec airflow api-server")
    log = open(base / "api-server.log", "w")
    process = subprocess.Popen(["bash", "-c", script], env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            assert process.poll() is None, (base / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "API server did not come up"
            try:
                if httpx.get(f"{url}/api/v2/monitor/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        yield url, report
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def token(url, user):
    response = httpx.post(f"{url}/auth/token", json={"username": user, "password": USERS[user][1]}, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def view(url, uri, **kwargs):
    return httpx.get(f"{url}/tune-serve/artifacts", params={"uri": str(uri)}, timeout=30, **kwargs)


def test_anonymous_callers_get_401_like_the_core_api(server):
    url, report = server
    assert httpx.get(f"{url}/api/v2/dags", timeout=30).status_code == 401
    assert view(url, report).status_code == 401
    assert view(url, report, headers={"Authorization": "Bearer not-a-jwt"}).status_code in (401, 403)
    assert view(url, report, cookies={"_token": "not-a-jwt"}).status_code in (401, 403)
    # The sub-app publishes no unauthenticated pages of its own.
    for page in ("docs", "redoc", "openapi.json"):
        assert httpx.get(f"{url}/tune-serve/{page}", timeout=30).status_code in (401, 404)


def test_a_user_without_access_to_the_dags_task_logs_gets_403(server):
    url, report = server
    response = view(url, report, headers={"Authorization": f"Bearer {token(url, 'nobody')}"})
    assert response.status_code == 403
    assert "rank 0" not in response.text


def test_a_viewer_reads_the_report_with_an_api_token(server):
    url, report = server
    response = view(url, report, headers={"Authorization": f"Bearer {token(url, 'viewer')}"})
    assert response.status_code == 200 and response.text == "<h1>rank 0</h1>"
    assert response.headers["content-security-policy"].startswith("sandbox")


def test_a_logged_in_ui_user_follows_a_task_link_with_the_uis_cookie(server):
    """The UI keeps its JWT in the `_token` cookie; a browser following a task link sends only that."""
    url, report = server
    assert view(url, report, cookies={"_token": token(url, "viewer")}).status_code == 200
    assert view(url, report, cookies={"_token": token(url, "nobody")}).status_code == 403


def test_the_run_view_asks_the_same_auth_manager_on_every_route(server):
    """The run view (tune_serve.web.ui, /tune-serve-view) takes the viewer's dependency: pages and
    the vendored scripts alike."""
    url, _ = server
    for path in ("/tune-serve-view/runs/r", "/tune-serve-view/runs", "/tune-serve-view/static/vega.min.js"):
        assert httpx.get(url + path, timeout=30).status_code == 401, path
        assert httpx.get(url + path, cookies={"_token": token(url, "nobody")}, timeout=30).status_code == 403, path
    assert httpx.get(f"{url}/tune-serve-view/static/vega.min.js", cookies={"_token": token(url, "viewer")},
                     timeout=30).status_code == 200
    # a run Airflow does not know, with nothing stored: a 404 page saying so (never JSON, never a path)
    response = httpx.get(f"{url}/tune-serve-view/runs/r", cookies={"_token": token(url, "viewer")}, timeout=30)
    assert response.status_code == 404 and "Airflow has no such run" in response.text
    assert '{"detail"' not in response.text


def test_the_trigger_check_tells_nothing_to_a_caller_who_may_not_trigger(server):
    """The trigger-time rule check (tune_serve.web.trigger_guard) answers only callers the auth
    manager lets trigger the DAG; anyone else gets Airflow's own 401/403, not the rules."""
    url, _ = server
    bad = {"conf": {"top_n": 5, "max_trials": 3}}
    endpoint = f"{url}/api/v2/dags/tune_train_serve/dagRuns"
    anonymous = httpx.post(endpoint, json=bad, timeout=30)
    assert anonymous.status_code == 401 and "top_n" not in anonymous.text
    for user in ("nobody", "viewer"):  # logged in, but may not trigger
        refused = httpx.post(endpoint, json=bad, cookies={"_token": token(url, user)}, timeout=30)
        assert refused.status_code == 403 and "top_n" not in refused.text, (user, refused.text)
