"""The data roots (issue 21): a trigger right is no read right on the host. A run's `source`
must lie under TUNE_SERVE_DATA_ROOTS (environment only), by real path for local files and by
scheme, bucket and prefix for gs://; the refusal names the setting, never a fact of the host."""
import os

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from test_params_and_plan import resolved

from tune_contract.data_roots import parse_roots, under_roots
from tune_contract.steps import PrepareArgs
from tune_serve import config
from tune_serve.web import trigger_guard
from tune_serve.workflow import plan as planning
from tune_serve.workflow.params import ConfError, validate_conf


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """tmp/data as the one local root, a secret CSV beside it, and the local backend."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ok.csv").write_text("x,y\n1,2\n")
    (tmp_path / "secret.csv").write_text("x,y\n1,2\n")
    (tmp_path / "secret.csv").chmod(0o600)
    monkeypatch.setenv("TUNE_SERVE_DATA_ROOTS", f"{tmp_path}/data, gs://bucket/tables/")
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "local")
    config.backend.cache_clear()
    yield tmp_path
    config.backend.cache_clear()


@pytest.mark.parametrize("path,inside", [
    ("{tmp}/data/ok.csv", True),
    ("file://{tmp}/data/ok.csv", True),
    ("{tmp}/data/sub/../ok.csv", True),
    ("{tmp}/data/../secret.csv", False),   # `..` resolved before comparing
    ("{tmp}/database.csv", False),         # a root is a folder, compared by path components
    ("{tmp}/data", True),
    ("data/ok.csv", False),                # relative: read from wherever the reader runs
    ("{tmp}/data/link.csv", False),        # a symlink out of the root
    ("gs://bucket/tables/a.csv", True),
    ("gs://bucket/tables/deep/a.csv", True),
    ("gs://bucket/tablesx/a.csv", False),
    ("gs://bucket/tables/../private/a.csv", False),  # refused, never normalised
    ("gs://bucket/tables/%2e%2e/private/a.csv", False),
    ("gs://other/tables/a.csv", False),
    ("gs://bucket//tables/a.csv", False),  # the object '/tables/a.csv' is not under 'tables/'
    ("s3://bucket/tables/a.csv", False),
    ("GS://bucket/tables/a.csv", False),
    ("{tmp}/data/ok.csv\0", False),
])
def test_under_roots(roots, path, inside):
    (roots / "data" / "link.csv").symlink_to(roots / "secret.csv")
    assert under_roots(path.replace("{tmp}", str(roots)), config.data_roots()) is inside


def test_roots_are_comma_separated_and_each_must_be_absolute_or_gs():
    assert parse_roots(" /a ,gs://bkt/p,, ") == ("/a", "gs://bkt/p")
    assert parse_roots(None) == parse_roots("") == ()
    for bad in ("data", "/a/../b", "gs://", "https://host/x", "~/data"):
        with pytest.raises(ValueError, match="TUNE_SERVE_DATA_ROOTS"):
            parse_roots(bad)


def test_the_default_is_the_repository_data_folder_locally_and_nothing_on_a_cluster(monkeypatch):
    monkeypatch.delenv("TUNE_SERVE_DATA_ROOTS", raising=False)
    for backend, expected in (("local", (str(config.REPO_ROOT / "data"),)), ("kubernetes", ()), ("gke", ())):
        monkeypatch.setenv("TUNE_SERVE_BACKEND", backend)
        config.backend.cache_clear()
        assert config.data_roots() == expected
    config.backend.cache_clear()


def test_the_roots_never_come_from_a_variable(monkeypatch):
    """An Airflow Variable tune_serve_data_roots is not read: only the environment."""
    import airflow.sdk

    monkeypatch.delenv("TUNE_SERVE_DATA_ROOTS", raising=False)
    monkeypatch.delenv("TUNE_SERVE_NO_VARIABLES", raising=False)
    monkeypatch.setattr(airflow.sdk.Variable, "get", staticmethod(lambda *a, **k: "/"))
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "local")
    config.backend.cache_clear()
    assert config.data_roots() == (str(config.REPO_ROOT / "data"),)
    config.backend.cache_clear()


@pytest.mark.parametrize("source", ["{tmp}/secret.csv", "{tmp}/nope.csv", "{tmp}/data/../secret.csv",
                                    "{tmp}/data/link.csv", "/etc/passwd.csv", "gs://private/secret.csv"])
def test_a_source_outside_the_roots_is_refused_naming_the_setting_never_the_file(roots, source):
    (roots / "data" / "link.csv").symlink_to(roots / "secret.csv")
    with pytest.raises(ConfError) as refused:
        validate_conf(resolved(source=source.replace("{tmp}", str(roots)), label="y"))
    message = str(refused.value)
    assert f"source: not under TUNE_SERVE_DATA_ROOTS (allowed: {roots}/data, gs://bucket/tables/; or a bundled " \
           "dataset: diamonds" in message
    assert "no file" not in message and "exist" not in message and "secret" not in message


def test_a_source_under_the_roots_passes_and_a_missing_one_there_is_named(roots):
    validate_conf(resolved(source=f"{roots}/data/ok.csv", label="y"))
    validate_conf(resolved(source="gs://bucket/tables/a.csv", label="y"))
    validate_conf(resolved(source="titanic"))
    with pytest.raises(ConfError, match="source: no file at .*nope.csv"):
        validate_conf(resolved(source=f"{roots}/data/nope.csv", label="y"))


def test_on_a_cluster_nothing_but_the_bundled_datasets_until_configured(monkeypatch):
    monkeypatch.delenv("TUNE_SERVE_DATA_ROOTS", raising=False)
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "gke")
    config.backend.cache_clear()
    try:
        validate_conf(resolved(source="iris"))
        with pytest.raises(ConfError, match=r"source: not under TUNE_SERVE_DATA_ROOTS \(allowed: none configured"):
            validate_conf(resolved(source="gs://bucket/churn.csv", label="churned"))
    finally:
        config.backend.cache_clear()


def test_a_feature_spec_is_a_mapping_never_a_path():
    conf = resolved()
    conf["feature_spec"] = "/etc/spec.yaml"  # past the Param's schema, as a run created another way could be
    with pytest.raises(ConfError, match="feature_spec: must be a mapping given inline"):
        validate_conf(conf)


def test_the_plan_hands_the_same_roots_to_the_trainer(roots, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(roots / "storage"))
    plan = planning.build_plan(resolved(source=f"{roots}/data/ok.csv", label="y"), "run-1")
    monkeypatch.delenv("TUNE_SERVE_DATA_ROOTS")  # the pod's environment has none: the flag says it
    assert PrepareArgs.from_argv(plan["prepare"]).data_roots == f"{roots}/data,gs://bucket/tables/"


def test_the_trigger_check_answers_about_the_roots_only(roots, monkeypatch):
    async def allowed(scope):
        return True

    monkeypatch.setattr(trigger_guard, "may_trigger", allowed)
    airflow = FastAPI()

    @airflow.post("/api/v2/dags/tune_train_serve/dagRuns")
    async def trigger(request: Request):
        return {"created": True}

    airflow.add_middleware(trigger_guard.TriggerGuard)
    client = TestClient(airflow)
    answers = [client.post("/api/v2/dags/tune_train_serve/dagRuns",
                           json={"conf": {"source": str(path), "label": "y"}})
               for path in (roots / "secret.csv", roots / "nope.csv")]
    assert [a.status_code for a in answers] == [400, 400]
    assert answers[0].json() == answers[1].json()  # whether a file exists there is not told
    assert "not under TUNE_SERVE_DATA_ROOTS" in answers[0].json()["detail"]
    assert os.path.exists(roots / "secret.csv")
