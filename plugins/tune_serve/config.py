"""Deployment settings, read from the environment first, then Airflow Variables.

The backend is chosen here, never by editing the DAG: with nothing configured it is
`local`, which runs every pod task as a process in the trainer environment.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import overload

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


@lru_cache(maxsize=1)
def backend() -> str:
    value = (setting("backend", "local") or "local").lower()
    if value not in BACKENDS:
        raise ValueError(f"TUNE_SERVE_BACKEND: {value!r} is not one of {', '.join(BACKENDS)}")
    return value


def storage_root() -> str:
    """Root of `{root}/runs/{run_id}/...` (a local path or gs:// URI)."""
    return setting("storage_root", str(REPO_ROOT / "var" / "storage"))


def serving_root() -> str:
    """Model base paths live at `{serving_root}/{model_name}/{version}/`."""
    return setting("serving_root", str(REPO_ROOT / "var" / "serving"))


def trainer_python() -> str:
    """Interpreter of the trainer environment, for the local backend."""
    return setting("trainer_python", str(REPO_ROOT / ".venv" / "trainer" / "bin" / "python"))


def serving_python() -> str:
    """Interpreter of the local TF-Serving stand-in."""
    return setting("serving_python", str(REPO_ROOT / ".venv" / "serving" / "bin" / "python"))


def local_state_dir() -> str:
    """Where the local backend keeps process records, logs and XCom files of its 'pods'."""
    return setting("local_state_dir", str(REPO_ROOT / "var" / "local"))


def trainer_image() -> str:
    return setting("trainer_image", "ghcr.io/tune-serve/trainer:0.1.0")
