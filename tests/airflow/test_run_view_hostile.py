"""The run view and the artifact viewer against stored files someone crafted (issue 21): every
stored string is escaped, the CSP forbids forms, base URLs and foreign frames, and one bad run
never breaks another's view nor loses the CSP header."""
import json
import re

import pytest
from fastapi.testclient import TestClient
from test_run_view import RUN_ID, write_run

from tune_serve.web import artifacts
from tune_serve.web.ui import app as view

# what a crafted file would hold: a refresh to elsewhere and a form posting elsewhere
MARKUP = ('"><meta http-equiv=refresh content="0;url=https://evil.example/"><form action=https://evil.example/>'
          "<button>x</button></form><script>alert(1)</script><base href=https://evil.example/>")
LIVE_TAGS = re.compile(r"<(meta http-equiv|form|button|base|script>alert)", re.I)


def hostile_run(root) -> str:
    """A run whose every stored string field is MARKUP (numbers where a number is needed to plot)."""
    run_id = "hostile"
    run = root / "runs" / run_id
    (run / "tuning").mkdir(parents=True)
    trial = {"trial_id": MARKUP, "hyperparameters": {MARKUP: MARKUP, "units": 8}, "objective": 1.0,
             "status": MARKUP, "epochs": MARKUP, "seconds": MARKUP, "tuner_id": MARKUP, "resumed_from_epoch": MARKUP,
             "pruned": MARKUP, "started_at": 1.0, "ended_at": 2.0}
    lost = {**trial, "trial_id": "07", "objective": None, "failure": MARKUP}
    (run / "tuning" / "oracle_result.json").write_text(json.dumps({
        "trials": [trial], "incomplete": [lost], "max_trials": MARKUP, "lost_tuners": [MARKUP],
        "objective": {"name": MARKUP, "direction": MARKUP}, "early_stopping": MARKUP,
        "warm_start": {"from": MARKUP, "note": MARKUP, "trials": MARKUP}}))
    (run / "tuning" / "oracle.json").write_text(json.dumps({"leases": {"handoffs": {MARKUP: 2}}}))
    (run / "models" / MARKUP).mkdir(parents=True, exist_ok=True)
    for rank in (0, MARKUP):
        (run / "models" / str(rank)).mkdir(parents=True, exist_ok=True)
        (run / "models" / str(rank) / "training.json").write_text(json.dumps(
            {"failed": MARKUP, "epochs": MARKUP, "logs": MARKUP, "stopped_early": MARKUP}))
        (run / "eval" / str(rank)).mkdir(parents=True, exist_ok=True)
        (run / "eval" / str(rank) / "evaluation.json").write_text(json.dumps(
            {"rank": rank, "blessed": MARKUP, "overall": {MARKUP: 1.0}, "reasons": [MARKUP],
             "baseline": {"overall": {MARKUP: MARKUP}}}))
    (run / "summary.json").write_text(json.dumps({
        "run_id": MARKUP, "model_name": MARKUP, "task": MARKUP, "outcome": MARKUP,
        "leaderboard": [{"rank": 0, "trial_id": MARKUP, "hyperparameters": {MARKUP: MARKUP}},
                        {"rank": MARKUP, "trial_id": MARKUP, "hyperparameters": {MARKUP: MARKUP}}],
        "evaluations": [{"rank": 0, "blessed": False, "reasons": [MARKUP], "failed_thresholds": [MARKUP]}],
        "deployed": {"model_name": MARKUP, "version": MARKUP, "previous_version": MARKUP, "candidate_rank": 0,
                     "eval_mae": MARKUP, "eval_metric": {"name": MARKUP, "value": MARKUP}},
        "training_failures": [{"rank": 0, "trial_id": MARKUP, "reason": MARKUP}],
        "search": [MARKUP], "lost_tuner_tasks": [MARKUP], "failed_steps": [MARKUP]}))
    return run_id


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(root))
    write_run(root)
    return root


@pytest.fixture
def client(root, view_client):
    return view_client(raise_server_exceptions=False)


def assert_csp(response) -> None:
    policy = response.headers["content-security-policy"]
    for directive in ("form-action 'none'", "base-uri 'none'", "frame-ancestors 'self'", "default-src 'none'"):
        assert directive in policy, (directive, policy)
    assert response.headers["x-content-type-options"] == "nosniff"


def test_every_stored_string_is_escaped(client, root):
    response = client.get(f"/runs/{hostile_run(root)}")
    assert response.status_code == 200, response.text[:500]
    assert not LIVE_TAGS.search(response.text), LIVE_TAGS.search(response.text)
    assert "&lt;meta http-equiv=refresh" in response.text  # shown, as text
    assert_csp(response)


def test_the_run_list_escapes_run_ids(client, root, monkeypatch):
    run_id = hostile_run(root)
    hostile = {"run_id": MARKUP, "state": MARKUP, "trigger": MARKUP, "user": MARKUP, "started": None, "ended": None,
               "seconds": None, "note": "cancelled " + MARKUP}
    plain = {**hostile, "run_id": run_id, "note": None}  # its summary.json is all markup
    monkeypatch.setattr(view.airflow_runs, "runs", lambda *args: (2, [hostile, plain]))
    response = client.get("/runs")
    assert "&lt;meta http-equiv=refresh" in response.text
    assert response.status_code == 200 and not LIVE_TAGS.search(response.text)


@pytest.mark.parametrize("version", ["<b>x</b>", None, [3], {"v": 1}, 1.5])
def test_a_bad_version_in_another_runs_summary_never_breaks_this_view(client, root, version):
    other = root / "runs" / "other"
    other.mkdir(parents=True)
    (other / "summary.json").write_text(json.dumps({"run_id": "other", "deployed": {
        "model_name": "diamonds", "version": version, "candidate_rank": 0}}))
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 200
    assert '<table id="versions">' in response.text and "<td>3</td>" in response.text
    assert_csp(response)


def test_unreadable_summaries_never_break_the_view(client, root):
    (root / "runs" / "other").mkdir(parents=True)
    (root / "runs" / "other" / "summary.json").write_text('["not", "a", "mapping"]')
    (root / "runs" / "third").mkdir(parents=True)
    (root / "runs" / "third" / "summary.json").write_text(json.dumps({"deployed": "diamonds"}))
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 200
    assert_csp(response)


@pytest.mark.parametrize("path", ["/runs/" + "a" * 5000, "/runs/" + "a" * 300])
def test_a_long_run_id_is_answered_with_the_csp_header(client, path):
    response = client.get(path)
    assert response.status_code in (400, 404)
    assert_csp(response)


def test_a_long_path_component_in_the_artifact_viewer_is_answered_with_the_csp_header(root):
    artifacts.app.dependency_overrides[artifacts.require_task_log_access] = lambda: None
    try:
        response = TestClient(artifacts.app, raise_server_exceptions=False).get(
            "/artifacts", params={"uri": f"{root}/runs/{'a' * 5000}/summary.json"})
    finally:
        artifacts.app.dependency_overrides.clear()
    assert response.status_code in (400, 404)
    assert "sandbox" in response.headers["content-security-policy"]
    assert "form-action 'none'" in response.headers["content-security-policy"]


def test_an_unexpected_failure_still_carries_the_csp_header(client, monkeypatch):
    def broken(run_id):
        raise RuntimeError("a bug")

    monkeypatch.setattr(view.run_state, "load", broken)
    response = client.get(f"/runs/{RUN_ID}")
    assert response.status_code == 500 and "a bug" not in response.text
    assert_csp(response)
