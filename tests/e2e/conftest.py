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
    # the tests' own tables (test_classification's bands.csv) are in pytest's temp folders
    env = private_airflow.private_env(tmp_path_factory.mktemp("stack"),
                                      TUNE_SERVE_DATA_ROOTS=str(tmp_path_factory.getbasetemp()))
    try:
        yield private_airflow.start(env), env
    finally:
        private_airflow.stop(env)


# One small real run, shared by the end-to-end checks and the browser tests of the run view.
TINY = {
    "source": "diamonds", "sample_rows": 1500, "algorithm": "random", "max_trials": 4, "num_tuners": 2,
    "tuning_epochs": 2, "top_n": 2, "training_epochs": 3, "early_stopping_patience": 2,
    "mae_upper_bound": 100000.0, "model_name": "diamonds-e2e",
}


@pytest.fixture(scope="session")
def happy_run(stack):
    client, env = stack
    run_id = client.trigger(TINY, run_id="e2e-happy")
    state = client.wait(run_id, timeout=1500)
    return client, env, run_id, state
