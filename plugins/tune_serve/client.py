"""Drive tune_train_serve through Airflow's REST API (v2): trigger, follow, read results.

Used by `make demo`, the end-to-end tests and the benchmarks; equally usable against a
remote Airflow (pass its base URL and a token).
"""
from __future__ import annotations

import time
from typing import Any

import httpx

from tune_serve.config import DAG_ID

__all__ = ["DAG_ID", "AirflowClient"]
FINISHED = {"success", "failed"}
# A local SQLite metadata DB answers 500 "database is locked" while the scheduler writes;
# reads are retried on that, and on a restarting API server.
READ_ATTEMPTS = 6


class AirflowClient:
    def __init__(self, base_url: str = "http://127.0.0.1:8080", token: str | None = None,
                 timeout: float = 30):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=f"{base_url.rstrip('/')}/api/v2", headers=headers, timeout=timeout)

    def _read(self, path: str, **kwargs) -> httpx.Response:
        """GET with retries on 5xx and refused connections (reads are idempotent)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                response = self.http.get(path, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                if attempt == READ_ATTEMPTS - 1:
                    raise
            else:
                if response.status_code < 500 or attempt == READ_ATTEMPTS - 1:
                    return response
            time.sleep(0.5 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _get(self, path: str, **params) -> Any:
        response = self._read(path, params=params)
        response.raise_for_status()
        return response.json()

    def wait_for_dag(self, dag_id: str = DAG_ID, timeout: float = 300) -> None:
        """Until the DAG processor has parsed the DAG (a fresh installation parses it first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # An import error left from an earlier parse is cleared by the next good one.
            errors = self._get("/importErrors")["import_errors"]
            response = self._read(f"/dags/{dag_id}")
            if not errors and response.status_code == 200 and not response.json().get("is_stale"):
                return
            time.sleep(2)
        details = "\n".join(e["stack_trace"] for e in errors)
        raise TimeoutError(f"DAG {dag_id} not ready within {timeout}s"
                           + (f"; import errors:\n{details}" if errors else ""))

    def trigger(self, conf: dict, run_id: str | None = None, dag_id: str = DAG_ID) -> str:
        body = {"logical_date": None, "conf": conf, **({"dag_run_id": run_id} if run_id else {})}
        response = self.http.post(f"/dags/{dag_id}/dagRuns", json=body)
        if response.status_code >= 400:
            raise ValueError(f"trigger refused ({response.status_code}): {response.text}")
        return response.json()["dag_run_id"]

    def dag_run(self, run_id: str, dag_id: str = DAG_ID) -> dict:
        """The run as the REST API describes it (state, start_date, end_date, conf, ...)."""
        return self._get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def tasks(self, dag_id: str = DAG_ID) -> list[dict]:
        """The DAG's tasks as the REST API describes them (task_id, downstream_task_ids, ...)."""
        return self._get(f"/dags/{dag_id}/tasks")["tasks"]

    def run_state(self, run_id: str, dag_id: str = DAG_ID) -> str:
        return self.dag_run(run_id, dag_id)["state"]

    def wait(self, run_id: str, timeout: float = 3600, dag_id: str = DAG_ID, on_poll=None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(run_id, dag_id)
            if on_poll:
                on_poll(self.task_instances(run_id, dag_id))
            if state in FINISHED:
                return state
            time.sleep(3)
        raise TimeoutError(f"run {run_id} not finished after {timeout}s")

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict]:
        return self._get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def task_tries(self, run_id: str, task_id: str, map_index: int = -1, dag_id: str = DAG_ID) -> list[dict]:
        """Every try of a task instance: its history plus the current try."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
        path += f"/{map_index}/tries" if map_index >= 0 else "/tries"
        return self._get(path)["task_instances"]

    def xcom(self, run_id: str, task_id: str, map_index: int = -1, dag_id: str = DAG_ID) -> Any:
        response = self._read(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"map_index": map_index, "deserialize": True, "stringify": False})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()["value"]

    def task_log(self, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1,
                 dag_id: str = DAG_ID) -> str:
        response = self._read(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"map_index": map_index, "full_content": True}, headers={"Accept": "application/json"})
        response.raise_for_status()
        lines = []
        for entry in response.json()["content"]:
            lines.append(str(entry.get("event", "")))
            for error in entry.get("error_detail") or []:
                lines.append(f"{error.get('exc_type')}: {error.get('exc_value')}")
        return "\n".join(lines)
