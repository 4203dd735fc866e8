"""The gs:// tests: both sides against a GCS emulator (tests/gcs_emulator.py).

TensorFlow reaches the emulator only inside the private network `make test-gcs` makes (root:
`unshare`); anywhere else these tests skip and say so. Each test gets a bucket of its own.
"""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "plugins"), str(REPO / "scripts")]
# as tests/airflow: settings from the environment only, never a real installation's home
os.environ.setdefault("TUNE_SERVE_NO_VARIABLES", "1")
os.environ.setdefault("AIRFLOW_HOME", str(REPO / "var" / "test-airflow-home"))

from gcs_emulator import GcsEmulator, in_private_network  # noqa: E402

TRAINER_PY = REPO / ".venv" / "trainer" / "bin" / "python"
_buckets = itertools.count()


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    if not in_private_network():
        pytest.skip("gs:// tests run in the private network `make test-gcs` makes (root, unshare)")
    with GcsEmulator(tmp_path_factory.mktemp("gcs")) as emulator:
        os.environ.update(emulator.env)  # google-cloud-storage and gcsfs in this process
        yield emulator


@pytest.fixture
def bucket(gcs):
    """A fresh bucket's gs:// URI."""
    return gcs.bucket(f"test-{next(_buckets)}")
