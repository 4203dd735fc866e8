"""scripts/airflow-stack.sh start never talks to a stranger on its ports.

A dummy HTTP server occupies the port and answers Airflow's health route (as another Airflow
on 8080 would): `start` must fail at once naming the port and how to choose another, and
start nothing of its own.
"""
from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import private_airflow  # noqa: E402


class StrangerHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stranger():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StrangerHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def start(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "scripts" / "airflow-stack.sh"), "start"], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("variable, what", [("AIRFLOW_PORT", "API server"),
                                            ("TUNE_SERVE_SERVING_PORT", "model server")])
def test_start_refuses_a_port_another_process_answers_on(stranger, tmp_path, variable, what):
    env = private_airflow.private_env(tmp_path, **{variable: str(stranger)})
    result = start(env)
    try:
        assert result.returncode != 0, result.stdout
        assert f"port {stranger} " in result.stderr and what in result.stderr, result.stderr
        assert f"{variable}={stranger + 1}" in result.stderr, result.stderr
        assert "pid " in result.stderr  # who holds it
        assert "Airflow is up" not in result.stdout
        pids = Path(env["AIRFLOW_HOME"]) / "pids"
        assert not pids.exists() or not list(pids.iterdir())  # nothing of ours was started
        assert not (tmp_path / "serving" / ".server" / "server.json").exists()
        assert not (tmp_path / "serving" / ".server" / "process").exists()  # no model server launched
    finally:
        subprocess.run([str(REPO / "scripts" / "airflow-stack.sh"), "stop"], env=env, timeout=120)
