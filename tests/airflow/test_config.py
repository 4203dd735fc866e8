"""Settings: what an Airflow Variable may and may not decide.

Anyone who can edit a Variable must not be able to make workers run their own binary or
write outside a storage location: executables come from the environment only, and roots
from a Variable are accepted only as a plain absolute path or a gs:// URI.
"""
import pytest

from tune_serve import config

VARIABLES: dict[str, str] = {}


@pytest.fixture(autouse=True)
def variables(monkeypatch):
    """Airflow Variables as the task SDK returns them; no TUNE_SERVE_* environment."""
    from airflow.sdk import Variable

    VARIABLES.clear()
    for name in ("TRAINER_PYTHON", "SERVING_PYTHON", "STORAGE_ROOT", "SERVING_ROOT", "LOCAL_STATE_DIR",
                 "NO_VARIABLES"):
        monkeypatch.delenv(f"TUNE_SERVE_{name}", raising=False)
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None: VARIABLES.get(key, default)))
    return VARIABLES


def test_executables_never_come_from_a_variable(variables):
    variables.update(tune_serve_trainer_python="/tmp/evil", tune_serve_serving_python="/tmp/evil")
    assert config.trainer_python() == str(config.REPO_ROOT / ".venv" / "trainer" / "bin" / "python")
    assert config.serving_python() == str(config.REPO_ROOT / ".venv" / "serving" / "bin" / "python")


def test_executables_from_the_environment(monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_TRAINER_PYTHON", "/opt/trainer/bin/python")
    monkeypatch.setenv("TUNE_SERVE_SERVING_PYTHON", "/opt/serving/bin/python")
    assert config.trainer_python() == "/opt/trainer/bin/python"
    assert config.serving_python() == "/opt/serving/bin/python"


@pytest.mark.parametrize("value", ["/data/tune-serve", "gs://my-bucket", "gs://my-bucket/tune-serve/runs"])
def test_roots_from_a_variable_that_are_a_path_or_a_gs_uri(variables, value):
    variables.update(tune_serve_storage_root=value, tune_serve_serving_root=value, tune_serve_local_state_dir="/srv/x")
    assert config.storage_root() == config.serving_root() == value
    assert config.local_state_dir() == "/srv/x"


@pytest.mark.parametrize("value", [
    "relative/path", "~/storage", "/data/../etc", "/data/./x", "file://etc/x", "file:///data/../etc", "s3://bucket/x", "gs://", "gs://../x",
    "gs://bucket/a/../../other", "gs://Bad_Bucket/x", "/data/.hidden/../x", "/data/x\n", "/data/x;rm -rf /", "https://example.com/x",
])
def test_roots_from_a_variable_anything_else_is_refused_naming_the_variable(variables, value):
    variables.update(tune_serve_storage_root=value, tune_serve_serving_root=value, tune_serve_local_state_dir=value)
    for read, name in ((config.storage_root, "storage_root"), (config.serving_root, "serving_root"),
                       (config.local_state_dir, "local_state_dir")):
        with pytest.raises(ValueError, match=f"tune_serve_{name}.*is not an absolute path"):
            read()


def test_roots_from_the_environment_are_checked_too(monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", "relative")
    with pytest.raises(ValueError, match="TUNE_SERVE_STORAGE_ROOT"):
        config.storage_root()


@pytest.mark.parametrize("value", ["/home/me/.local/share/tune serve", "/srv/checkout/.ci-run/var/storage"])
def test_roots_from_the_environment_may_sit_in_hidden_folders_or_have_spaces(monkeypatch, value):
    # the installer's own choice (a checkout under a hidden folder, a user's home with spaces)
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", value)
    assert config.storage_root() == value


def test_a_variable_may_name_a_hidden_folder_but_not_dot_segments(variables):
    variables.update(tune_serve_storage_root="/data/.tune-serve/runs")
    assert config.storage_root() == "/data/.tune-serve/runs"
    variables.update(tune_serve_storage_root="/data/./x")
    with pytest.raises(ValueError, match="never '.' or '..'"):
        config.storage_root()


def test_a_file_uri_root_is_a_path(variables, monkeypatch):
    variables.update(tune_serve_storage_root="file:///data/tune-serve")
    assert config.storage_root() == "file:///data/tune-serve"
    monkeypatch.setenv("TUNE_SERVE_SERVING_ROOT", "file:///home/me/.serving")
    assert config.serving_root() == "file:///home/me/.serving"
