"""The Airflow plugin of tune_train_serve: task links to run artifacts, their viewer, the run view,
the run note and the trigger-time check of the run parameters."""
from airflow.plugins_manager import AirflowPlugin

from tune_serve.web import note_listener
from tune_serve.web.artifacts import app
from tune_serve.web.trigger_guard import TriggerGuard
from tune_serve.web.ui.app import app as view_app
from tune_serve.workflow.links import POD_TASK_LINKS

# The UI frames these pages on the run's and the DAG's page ({RUN_ID} is filled in by the UI;
# relative, so they follow Airflow's base URL).
VIEWS = [
    {"name": "Tuning results", "href": "tune-serve-view/runs/{RUN_ID}", "destination": "dag_run",
     "url_route": "tune-serve-run"},
    {"name": "Tuning runs", "href": "tune-serve-view/runs", "destination": "dag",
     "url_route": "tune-serve-runs"},
]


class TuneServePlugin(AirflowPlugin):
    name = "tune_serve"
    fastapi_apps = [{"app": app, "url_prefix": "/tune-serve", "name": "tune_serve artifacts"},
                    {"app": view_app, "url_prefix": "/tune-serve-view", "name": "tune_serve run view"}]
    external_views = VIEWS
    # rules across fields refused when a run is triggered (form or API), before it exists
    fastapi_root_middlewares = [{"middleware": TriggerGuard, "name": "tune_serve trigger guard"}]
    operator_extra_links = list(POD_TASK_LINKS)
    listeners = [note_listener]  # each run's note: what it deployed, or why nothing
