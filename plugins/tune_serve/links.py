"""Links from a task to what it produced: the evaluation report, the TensorBoard logs.

Airflow 3 evaluates operator links on the worker when the task ends and stores the URL
as an XCom, so a link reads the task's own result. `gs://` artifacts open in the Cloud
console; local ones through the artifact viewer this package adds to Airflow's API
server (`tune_serve.artifacts`).
"""
from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import BaseOperatorLink, conf
from airflow.sdk.execution_time.xcom import XCom  # the configured XCom backend


def artifact_url(uri: str | None) -> str:
    if not uri:
        return ""
    if uri.startswith("gs://"):
        return "https://console.cloud.google.com/storage/browser/" + quote(uri[len("gs://"):])
    base = conf.get("api", "base_url", fallback="http://127.0.0.1:8080").rstrip("/")
    return f"{base}/tune-serve/artifacts?uri={quote(uri, safe='')}"


class _ResultLink(BaseOperatorLink):
    key: str = ""

    def get_link(self, operator, *, ti_key) -> str:
        result = XCom.get_value(ti_key=ti_key, key="return_value")
        return artifact_url(result.get(self.key)) if isinstance(result, dict) else ""


class EvaluationReportLink(_ResultLink):
    name = "Evaluation report"
    key = "report"


class TensorBoardLogsLink(_ResultLink):
    name = "TensorBoard logs"
    key = "logs"


POD_TASK_LINKS = (EvaluationReportLink(), TensorBoardLogsLink())
