"""Fixtures for the TF Serving stand-in (run in the serving venv):

    .venv/serving/bin/python -m pytest tests/serving -q
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # saved_models.py, serving_helpers.py
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "include" / "serving"))  # tf_serving_rest

import saved_models  # noqa: E402
from serving_helpers import ServingProcess  # noqa: E402

BIASES = {"v1": 1.0, "v2": 2.0}


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory) -> dict[str, Path]:
    """SavedModels made once: v1 and v2 (biases 1 and 2), `poison` (loads, predicts NaN)."""
    root = tmp_path_factory.mktemp("saved_models")
    models = {name: Path(saved_models.make_saved_model(str(root / name), bias)) for name, bias in BIASES.items()}
    models["poison"] = Path(saved_models.make_saved_model(str(root / "poison"), 0.0, poison=True))
    return models


@pytest.fixture
def start_server(tmp_path):
    started: list[ServingProcess] = []

    def start(root: Path | None = None) -> ServingProcess:
        server = ServingProcess(root or tmp_path / f"serving{len(started)}")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
