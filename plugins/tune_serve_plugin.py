"""The Airflow plugin of tune_train_serve: task links to run artifacts, and their viewer."""
from airflow.plugins_manager import AirflowPlugin

from tune_serve.artifacts import app
from tune_serve.links import EvaluationReportLink, TensorBoardLogsLink


class TuneServePlugin(AirflowPlugin):
    name = "tune_serve"
    fastapi_apps = [{"app": app, "url_prefix": "/tune-serve", "name": "tune_serve artifacts"}]
    operator_extra_links = [EvaluationReportLink(), TensorBoardLogsLink()]
