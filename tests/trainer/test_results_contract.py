"""The result TypedDicts of the contract (tune_contract.results) are what the steps write: every
key a step's result carries is a key of its TypedDict, and a TypedDict's required keys are there.

prepare and train are checked on real results (the session's tiny run); the chief's, a tuner's,
a trial record's and evaluate's by the keys their code writes (those steps are slow to run here,
and their own tests run them)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import get_type_hints

from tune_contract import results

TRAINER = Path(__file__).resolve().parents[2] / "include" / "trainer" / "trainer"


def _keys(td) -> set[str]:
    return set(get_type_hints(td))


def _written_keys(path: Path, function: str) -> set[str]:
    """String keys of the dict literals `function` builds, and of `x["key"] = ...` inside it."""
    tree = ast.parse(path.read_text(), str(path))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    keys: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Dict) and any(isinstance(k, ast.Constant) and k.value in ("rank", "trials", "trial_id",
                                                                                           "tuner_id")
                                               for k in child.keys):
            keys |= {k.value for k in child.keys if isinstance(k, ast.Constant)}
        elif isinstance(child, ast.Assign) and isinstance(child.targets[0], ast.Subscript) \
                and isinstance(child.targets[0].slice, ast.Constant) and isinstance(child.targets[0].value, ast.Name) \
                and child.targets[0].value.id == "result":
            keys.add(child.targets[0].slice.value)
    return keys


def test_prepare_writes_its_typed_dict(prepared):
    result = prepared["result"]
    assert set(result) <= _keys(results.PrepareResult), set(result) - _keys(results.PrepareResult)
    assert set(result["model"]) == _keys(results.PreparedModel)
    assert set(result["columns"]) == {"numeric", "categorical"}


def test_train_writes_its_typed_dict(trained):
    assert set(trained) <= _keys(results.TrainResult), set(trained) - _keys(results.TrainResult)
    assert set(trained["objective"]) <= _keys(results.TrainObjective)


def test_the_chief_a_tuner_a_trial_and_evaluate_write_their_typed_dicts():
    written = {
        "OracleResult": _written_keys(TRAINER / "tuning" / "oracle_step.py", "build_result"),
        "Trial": _written_keys(TRAINER / "tuning" / "distributed" / "records.py", "trial_record") | {"pruned", "failure"},
        "TuneResult": _written_keys(TRAINER / "tuning" / "tune_step.py", "run"),
        "EvaluateResult": _written_keys(TRAINER / "evaluation" / "run.py", "run"),
    }
    for name, keys in written.items():
        assert keys, f"found no result written for {name}"
        assert keys <= _keys(getattr(results, name)), (name, keys - _keys(getattr(results, name)))
    assert _keys(results.TuneResult) == written["TuneResult"]
