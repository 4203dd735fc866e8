"""A private local Airflow (scheduler, DAG processor, API server, triggerer) for end-to-end tests."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO / "scripts"))

import private_airflow  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """Start the stack with every root under a temp dir; yields (client, env)."""
    env = private_airflow.private_env(tmp_path_factory.mktemp("stack"))
    try:
        yield private_airflow.start(env), env
    finally:
        private_airflow.stop(env)
