"""The mirror of tests/airflow/test_dag_integrity.py: the trainer never imports Airflow, and
the contract it shares with the Airflow side is standard library only."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINER = REPO / "include" / "trainer" / "trainer"
CONTRACT = REPO / "include" / "contract" / "tune_contract"


def _imported_roots(package: Path) -> dict[str, set[str]]:
    roots: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                roots.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return roots


def test_no_trainer_module_imports_airflow_even_inside_a_function():
    roots = _imported_roots(TRAINER)
    assert "airflow" not in roots, roots.get("airflow")
    assert "tune_serve" not in roots, roots.get("tune_serve")


def test_the_contract_is_standard_library_only():
    outside = {root: files for root, files in _imported_roots(CONTRACT).items()
               if root not in sys.stdlib_module_names and root not in ("tune_contract", "__future__")}
    assert outside == {}


def test_running_every_step_module_loads_no_airflow():
    modules = ["trainer.cli", "trainer.prepare", "trainer.training.run", "trainer.evaluation.run",
               "trainer.tuning.oracle_step", "trainer.tuning.tune_step", "trainer.tuning.objective_step",
               "trainer.tuning.function_tuner", "trainer.tuning.keras_trial"]
    probe = (f"import importlib, json, sys; [importlib.import_module(m) for m in {modules!r}]; "
             "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'tune_serve'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO / "include" / "trainer"), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_model_takes_exactly_the_hyperparameters_the_contract_names():
    from trainer.model import DEFAULT_HYPERPARAMETERS

    from tune_contract.search_space import MODEL_HYPERPARAMETERS

    assert tuple(DEFAULT_HYPERPARAMETERS) == MODEL_HYPERPARAMETERS
