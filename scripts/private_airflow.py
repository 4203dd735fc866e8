"""A private local Airflow for the end-to-end tests, the fault-injection suite and the
benchmarks: scripts/airflow-stack.sh with its own AIRFLOW_HOME, ports and storage, serving
and process-state roots under one directory, so it never touches the user's installation.

Needs plugins/ on sys.path (for the REST client).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "airflow-stack.sh"
PLUGINS = str(SCRIPT.parents[1] / "plugins")
if PLUGINS not in sys.path:  # tune_serve.local.ports is standard library only
    sys.path.insert(0, PLUGINS)

from tune_serve.local.ports import free_port  # noqa: E402  (re-exported for the tests and the benchmarks)


def private_env(base: Path, **settings: str) -> dict[str, str]:
    """The environment of a local-backend stack rooted at `base`; `settings` add or override."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(base / "airflow"),
        "AIRFLOW_PORT": str(free_port()),
        "TUNE_SERVE_STORAGE_ROOT": str(base / "storage"),
        "TUNE_SERVE_SERVING_ROOT": str(base / "serving"),
        "TUNE_SERVE_SERVING_PORT": str(free_port()),
        "TUNE_SERVE_LOCAL_STATE_DIR": str(base / "local"),
        "TUNE_SERVE_BACKEND": "local",
        # where runs may read tables (a folder of the stack's own; tests with tables elsewhere override it)
        "TUNE_SERVE_DATA_ROOTS": str(base / "data"),
        "TUNE_SERVE_NO_VARIABLES": "1",  # settings from this environment only, never Variables
        **settings,
    }


def start(env: dict[str, str], timeout: float = 600):
    """Start every component (those not running already) and wait for the DAG; returns the
    REST client. This process takes the stack's TUNE_SERVE_* settings, for the serving helpers."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("TUNE_SERVE_")})
    subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    from tune_serve.client import AirflowClient

    client = AirflowClient(f"http://127.0.0.1:{env['AIRFLOW_PORT']}")
    client.wait_for_dag()
    return client


def stop(env: dict[str, str], timeout: float = 180) -> None:
    """Stop Airflow and every local model server this process's settings point at."""
    subprocess.run([str(SCRIPT), "stop"], env=env, timeout=timeout)
    from tune_serve.local import serving as local_serving

    local_serving.stop_all_local_servers()
