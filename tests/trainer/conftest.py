"""Shared fixtures of the trainer tests: one tiny prepared run and one trained model per session.

Steps run in-process through the real CLI (`trainer.cli.main`) unless a test needs a real
process (exit codes and stderr of bad input, a SIGKILL); TensorFlow then loads only once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRAINER_SRC = REPO / "include" / "trainer"
sys.path.insert(0, str(TRAINER_SRC))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SAMPLE_ROWS = 600
TINY_HYPERPARAMETERS = {"num_layers": 1, "units": 16, "batch_size": 64, "learning_rate": 0.01}
WIDE_AND_DEEP = "tune_serve_models.wide_and_deep:build"
# the bottleneck layer exists only with `bottleneck` on; its width is a conditional hyperparameter
WIDE_AND_DEEP_HYPERPARAMETERS = {"num_hidden_layers": 1, "hidden_size": 32, "bottleneck": True, "bottleneck_units": 12,
                                 "batch_size": 64, "learning_rate": 0.01}


@pytest.fixture(scope="session", autouse=True)
def data_roots(tmp_path_factory) -> str:
    """The tests' own tables live in pytest's temp folders: those are the data roots
    (TUNE_SERVE_DATA_ROOTS) of every step they run, in this process and in its children."""
    root = str(tmp_path_factory.getbasetemp())
    os.environ["TUNE_SERVE_DATA_ROOTS"] = root
    return root


def run_step(step: str, run_root: Path | str, *flags: str, xcom: Path | None = None) -> tuple[int, dict | None]:
    """Run a step through the CLI in this process: (exit code, the JSON result or None)."""
    from trainer.cli import main

    xcom = Path(xcom or f"{run_root}.{step}.{os.getpid()}.json")
    if xcom.exists():
        xcom.unlink()
    code = main([step, "--run-root", str(run_root), "--xcom-file", str(xcom), *flags])
    return code, json.loads(xcom.read_text()) if xcom.exists() else None


def run_cli(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`python -m trainer …` in a fresh process, as a pod runs it."""
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(), **popen)


def cli_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(TRAINER_SRC), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> dict:
    """diamonds, 600 sampled rows, prepared once: {"run_root", "result"}."""
    run_root = tmp_path_factory.mktemp("run") / "runs" / "tiny"
    code, result = run_step("prepare", run_root, "--sample-rows", str(SAMPLE_ROWS), "--seed", "7")
    assert code == 0, "prepare failed"
    return {"run_root": run_root, "result": result}


@pytest.fixture(scope="session")
def trained(prepared) -> dict:
    """Rank 0 trained for 2 epochs on the tiny run."""
    code, result = run_step("train", prepared["run_root"], "--rank", "0", "--epochs", "2", "--seed", "1",
                            "--trial-id", "t-007",
                            "--hyperparameters", json.dumps({**TINY_HYPERPARAMETERS, "tuner/epochs": 4}))
    assert code == 0, "train failed"
    return result


@pytest.fixture(scope="session")
def trained_wide_and_deep(prepared) -> dict:
    """The shipped wide-and-deep example (a user model) as rank 3, 2 epochs, bottleneck on."""
    code, result = run_step("train", prepared["run_root"], "--rank", "3", "--epochs", "2", "--seed", "1",
                            "--model", WIDE_AND_DEEP, "--trial-id", "t-wd",
                            "--hyperparameters", json.dumps({**WIDE_AND_DEEP_HYPERPARAMETERS, "tuner/epochs": 2}))
    assert code == 0, "train of the wide-and-deep model failed"
    return result
