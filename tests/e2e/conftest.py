"""A private local Airflow (scheduler, DAG processor, API server, triggerer) for end-to-end tests."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Start the stack with every root under a temp dir; yields (client, env)."""
    base = tmp_path_factory.mktemp("stack")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(base / "airflow"),
        "AIRFLOW_PORT": str(_free_port()),
        "TUNE_SERVE_STORAGE_ROOT": str(base / "storage"),
        "TUNE_SERVE_SERVING_ROOT": str(base / "serving"),
        "TUNE_SERVE_SERVING_PORT": str(_free_port()),
        "TUNE_SERVE_LOCAL_STATE_DIR": str(base / "local"),
        "TUNE_SERVE_BACKEND": "local",
        "TUNE_SERVE_NO_VARIABLES": "1",
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith("TUNE_SERVE_")})
    script = str(REPO / "scripts" / "airflow-stack.sh")
    subprocess.run([script, "start"], env=env, check=True, timeout=300)
    from tune_serve.client import AirflowClient

    client = AirflowClient(f"http://127.0.0.1:{env['AIRFLOW_PORT']}")
    try:
        client.wait_for_dag()
        yield client, env
    finally:
        subprocess.run([script, "stop"], env=env, timeout=120)
        from tune_serve.serving import local as local_serving

        local_serving.stop_all_local_servers()
