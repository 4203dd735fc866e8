"""The DAG file as the DAG processor sees it: parses cleanly, cheaply, and completely."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["tune_train_serve"]


def test_parsing_never_imports_tensorflow():
    probe = ("import sys, runpy; sys.path.insert(0, 'plugins'); runpy.run_path('dags/tune_train_serve.py'); "
             "import json; print(json.dumps(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('tensorflow', 'keras', 'keras_tuner', 'tensorflow_model_analysis'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "TUNE_SERVE_NO_VARIABLES": "1"}, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_flow_matches_the_design(dag):
    ids = set(dag.task_ids)
    expected = {"validate_params", "prepare_data", "tuning.start_oracle", "tuning.tune", "tuning.wait_oracle",
                "tuning.stop_oracle", "aggregate_top_n", "training.train", "evaluation.evaluate",
                "serving.select_model", "serving.deploy_serving", "summarize"}
    assert expected <= ids
    down = lambda t: dag.get_task(t).downstream_task_ids  # noqa: E731
    assert "prepare_data" in dag.get_task("tuning.start_oracle").upstream_task_ids
    assert {"tuning.tune", "tuning.wait_oracle"} <= down("tuning.start_oracle")
    assert dag.get_task("tuning.stop_oracle").is_teardown
    assert {"tuning.tune", "tuning.wait_oracle"} <= dag.get_task("aggregate_top_n").upstream_task_ids
    assert dag.get_task("evaluation.evaluate").upstream_task_ids & {"evaluation.evaluation_arguments"}
    assert "serving.deploy_serving" in down("serving.select_model")


def test_every_task_has_an_owner_and_retries(dag):
    for task in dag.tasks:
        assert task.owner == "ml-platform", task.task_id
        assert task.retries >= 1, task.task_id


def test_tuners_are_preemptible_mapped_and_pooled(dag):
    tune = dag.get_task("tuning.tune")
    assert tune.partial_kwargs["retries"] >= 3
    assert tune.partial_kwargs.get("pool") == "tuners"


def test_params_schema_is_valid_json_schema(dag):
    import jsonschema

    for name, param in dag.params.items():
        jsonschema.Draft7Validator.check_schema(param.schema)
        assert param.description and param.schema.get("title"), name
    dag.params.validate()  # the defaults themselves are valid
