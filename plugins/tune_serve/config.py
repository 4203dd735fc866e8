"""Deployment settings, read from the environment first, then Airflow Variables.

The backend is chosen here, never by editing the DAG: with nothing configured it is
`local`, which runs every pod task as a process in the trainer environment.

Whoever can edit an Airflow Variable is not trusted with the workers themselves: the
executables the local backend runs come from the environment only, and a storage, serving
or state root is accepted only as a plain absolute path or a gs:// URI.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import overload

from tune_contract import data_roots as roots_rule

# The DAG's id: the DAG file, the web surfaces and the REST client all name it from here.
DAG_ID = "tune_train_serve"

BACKENDS = ("local", "kubernetes", "gke")
REPO_ROOT = Path(__file__).resolve().parents[2]


@overload
def setting(name: str) -> str | None: ...
@overload
def setting(name: str, default: str) -> str: ...
@overload
def setting(name: str, default: str | None) -> str | None: ...


def setting(name: str, default: str | None = None) -> str | None:
    """`TUNE_SERVE_<NAME>` from the environment, else Airflow Variable `tune_serve_<name>`."""
    env = os.environ.get(f"TUNE_SERVE_{name.upper()}")
    if env not in (None, ""):
        return env
    if os.environ.get("TUNE_SERVE_NO_VARIABLES"):
        return default
    try:
        from airflow.sdk import Variable

        return Variable.get(f"tune_serve_{name.lower()}", default=default)
    except Exception:  # no metadata DB or API reachable (unit tests, parse outside Airflow)
        return default


def environment_setting(name: str, default: str) -> str:
    """`TUNE_SERVE_<NAME>` from the environment only: never from an Airflow Variable."""
    return os.environ.get(f"TUNE_SERVE_{name.upper()}") or default


# A Variable can be edited by anyone with that right in the UI, so a root read from one must be
# plain: absolute, segments of a few safe characters, never '.' or '..', no '~', shell or URL
# syntax; gs:// with a valid bucket name. A root from the environment or the default is the
# installer's own choice: it must only be absolute, without '.' or '..' segments (a checkout
# under a hidden folder or a path with spaces is fine).
_SEGMENT = r"(?!\.\.?(?:/|$))[A-Za-z0-9_.+=@-]+"
_PLAIN_PATH = re.compile(rf"(file://)?(/|(/{_SEGMENT})+/?)")  # file:///abs is a path too
_GS_URI = re.compile(rf"gs://[a-z0-9][a-z0-9._-]{{1,220}}[a-z0-9](/{_SEGMENT})*/?")


def _installer_path(value: str) -> bool:
    value = value.removeprefix("file://")
    return value.startswith("/") and not ({".", ".."} & set(value.split("/"))) and "\0" not in value


def location_setting(name: str, default: str, *, remote: bool = True) -> str:
    """A root directory setting, checked wherever it comes from (clear error naming it)."""
    env = f"TUNE_SERVE_{name.upper()}"
    value = setting(name, default) or ""
    from_variable = not os.environ.get(env) and value != default
    if _PLAIN_PATH.fullmatch(value) or (remote and _GS_URI.fullmatch(value)):
        return value
    if not from_variable and _installer_path(value):
        return value
    source = env if os.environ.get(env) else f"the Airflow Variable tune_serve_{name.lower()}"
    allowed = "an absolute path or a gs://BUCKET/PATH URI" if remote else "an absolute path"
    rule = ("plain segments of letters, digits, '_', '.', '-', '+', '=', '@', never '.' or '..'"
            if from_variable else "no '.' or '..' segments")
    raise ValueError(f"{source}: {value!r} is not {allowed} ({rule})")


@lru_cache(maxsize=1)
def backend() -> str:
    value = (setting("backend", "local") or "local").lower()
    if value not in BACKENDS:
        raise ValueError(f"TUNE_SERVE_BACKEND: {value!r} is not one of {', '.join(BACKENDS)}")
    return value


def storage_root() -> str:
    """Root of `{root}/runs/{run_id}/...` (a local path or gs:// URI)."""
    return location_setting("storage_root", str(REPO_ROOT / "var" / "storage"))


def serving_root() -> str:
    """Model base paths live at `{serving_root}/{model_name}/{version}/`."""
    return location_setting("serving_root", str(REPO_ROOT / "var" / "serving"))


# The repository's own data folder: where a user's tables go on the local backend (data/README.md).
DATA_DIR = REPO_ROOT / "data"


def data_roots() -> tuple[str, ...]:
    """Where a run's `source` may be read (tune_contract.data_roots): TUNE_SERVE_DATA_ROOTS,
    comma-separated, from the environment only (a Variable editor or a run's conf must never
    widen what a trigger can read). Unset: the repository's data folder on the local backend,
    nothing on a cluster (its pods see other files; only what the installer names there)."""
    value = os.environ.get(roots_rule.ENV, "")
    if value.strip():
        return roots_rule.parse_roots(value)
    return (str(DATA_DIR),) if backend() == "local" else ()


def trainer_python() -> str:
    """Interpreter of the trainer environment, for the local backend (environment only)."""
    return environment_setting("trainer_python", str(REPO_ROOT / ".venv" / "trainer" / "bin" / "python"))


def serving_python() -> str:
    """Interpreter of the local TF-Serving stand-in (environment only)."""
    return environment_setting("serving_python", str(REPO_ROOT / ".venv" / "serving" / "bin" / "python"))


def local_state_dir() -> str:
    """Where the local backend keeps process records, logs and XCom files of its 'pods'."""
    return location_setting("local_state_dir", str(REPO_ROOT / "var" / "local"), remote=False)


def trainer_image() -> str:
    return setting("trainer_image", "ghcr.io/tune-serve/trainer:0.1.0")
