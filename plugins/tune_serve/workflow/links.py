"""Links from a task to what it produced: the evaluation report, its learning curves (with the
exact TensorBoard command) in the run view, and the run view itself.

Airflow 3 evaluates operator links on the worker when the task ends and stores the URL
as an XCom, so a link reads the task's own result. `gs://` artifacts open in the Cloud
console, unless the bucket is an emulator's (`STORAGE_EMULATOR_HOST`: the console knows
nothing of it); the others through the artifact viewer this package adds to Airflow's API
server (`tune_serve.web.artifacts`), which reads local folders and buckets alike.
"""
from __future__ import annotations

import os
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink, conf
from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend


def _base() -> str:
    return conf.get("api", "base_url", fallback="http://127.0.0.1:8080").rstrip("/")


def artifact_url(uri: str | None) -> str:
    if not uri:
        return ""
    if uri.startswith("gs://") and not os.environ.get("STORAGE_EMULATOR_HOST"):
        return "https://console.cloud.google.com/storage/browser/" + quote(uri[len("gs://"):])
    return f"{_base()}/tune-serve/artifacts?uri={quote(uri, safe='')}"


def run_view_url(dag_id: str, run_id: str) -> str:
    """The run's "Tuning results" tab in Airflow's UI (tune_serve_plugin.VIEWS)."""
    return f"{_base()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plugin/tune-serve-run"


def candidate_url(run_id: str, rank) -> str:
    """A candidate in the run view: its learning curves and the TensorBoard command for its logs."""
    return f"{_base()}/tune-serve-view/runs/{quote(run_id, safe='')}#candidate-{quote(str(rank), safe='')}"


class _ResultLink(BaseOperatorLink):
    key: str = ""

    def get_link(self, operator, *, ti_key) -> str:
        result = XCom.get_value(ti_key=ti_key, key="return_value")
        return artifact_url(result.get(self.key)) if isinstance(result, dict) else ""


class EvaluationReportLink(_ResultLink):
    name = "Evaluation report"
    key = "report"


class TensorBoardLogsLink(BaseOperatorLink):
    """Learning curves of the candidate a `train` task produced, with the exact command."""

    name = "Learning curves"

    def get_link(self, operator, *, ti_key) -> str:
        result = XCom.get_value(ti_key=ti_key, key="return_value")
        if not isinstance(result, dict) or not result.get("logs") or result.get("rank") is None:
            return ""
        return candidate_url(ti_key.run_id, result["rank"])


class RunViewLink(BaseOperatorLink):
    name = "Tuning results"

    def get_link(self, operator, *, ti_key) -> str:
        return run_view_url(ti_key.dag_id, ti_key.run_id)


POD_TASK_LINKS = (EvaluationReportLink(), TensorBoardLogsLink(), RunViewLink())
