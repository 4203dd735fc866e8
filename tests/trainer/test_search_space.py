"""The search space as data, and every bad tuning input refused (exit 2) before anything trains."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from trainer.errors import BadInput
from trainer.tuning import search_space as ss
from tuning_helpers import env


def test_default_space_is_the_tabular_models():
    space = ss.load(None)
    assert space.names == ["num_layers", "units", "dropout", "learning_rate", "batch_size"]
    params = {p.name: p for p in space.parameters}
    assert params["num_layers"].grid() == (1, 2, 3)
    assert params["units"].grid() == (16, 32, 48, 64, 80, 96, 112, 128)
    assert params["dropout"].grid() == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # exact, and 0.5 included
    assert params["batch_size"].grid() == (64, 128, 256)
    assert not params["learning_rate"].discrete and params["learning_rate"].log


def test_to_hyperparameters_keeps_exact_values():
    from keras_tuner.src.engine.hyperparameters import hp_types

    hps = {hp.name: hp for hp in ss.to_hyperparameters(ss.load(None)).space}
    assert isinstance(hps["dropout"], hp_types.Choice) and list(hps["dropout"].values) == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert isinstance(hps["learning_rate"], hp_types.Float) and hps["learning_rate"].sampling == "log"
    assert (hps["learning_rate"].min_value, hps["learning_rate"].max_value) == (1e-4, 1e-2)
    assert list(hps["units"].values) == [16, 32, 48, 64, 80, 96, 112, 128]
    assert list(hps["batch_size"].values) == [64, 128, 256]


def test_a_log_step_is_a_multiplier():
    space = ss.validate([{"name": "lr", "type": "float", "min": 1e-4, "max": 1e-1, "step": 10, "log": True}])
    assert space.parameters[0].grid() == (1e-4, 1e-3, 1e-2, 1e-1)


def test_yaml_file_inline_yaml_and_mapping_forms(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("parameters:\n  - {name: units, type: int, min: 8, max: 32, step: 8}\n"
                    "  - {name: batch_size, type: choice, values: [32, 64]}\n")
    from_file = ss.load(str(path))
    inline = ss.load("- {name: units, type: int, min: 8, max: 32, step: 8}\n- {name: batch_size, type: choice, values: [32, 64]}")
    assert from_file == inline
    assert from_file.to_list() == [{"name": "units", "type": "int", "min": 8, "max": 32, "step": 8},
                                   {"name": "batch_size", "type": "choice", "values": [32, 64]}]


def test_mixed_int_and_float_choices_become_floats():
    assert ss.validate([{"name": "learning_rate", "type": "choice", "values": [1, 0.1]}]).parameters[0].values == (1.0, 0.1)


def test_grid_needs_discrete_parameters():
    with pytest.raises(BadInput) as err:
        ss.load(None).require_discrete("grid")
    assert err.value.field == "--search-space.learning_rate"
    ss.validate([{"name": "units", "type": "int", "min": 1, "max": 4}]).require_discrete("grid")  # ints are discrete


def _p(**kw):
    return json.dumps([{"name": "units", "type": "int", "min": 16, "max": 64, **kw}])


BAD_SPACES = [
    (json.dumps([{"name": "units", "type": "double", "min": 1, "max": 2}]), "--search-space.units.type", "allowed: int, float, choice"),
    (_p(min=64, max=16), "--search-space.units.min", "must be < max"),
    (_p(min=16, max=16), "--search-space.units.min", "must be < max"),
    (json.dumps([{"name": "learning_rate", "type": "float", "min": 0, "max": 0.1, "log": True}]),
     "--search-space.learning_rate.min", "must be > 0 with log"),
    (json.dumps([{"name": "batch_size", "type": "choice", "values": []}]), "--search-space.batch_size.values", "non-empty"),
    (json.dumps([{"name": "units", "type": "int", "min": 1, "max": 4}, {"name": "units", "type": "int", "min": 1, "max": 8}]),
     "--search-space.units", "defined twice"),
    (_p(default=32), "--search-space.units.default", "allowed: name, type, min, max, step, log"),
    (json.dumps([{"name": "batch_size", "type": "choice", "values": [64], "min": 1}]), "--search-space.batch_size.min",
     "allowed: name, type, values"),
    (_p(step=0), "--search-space.units.step", "must be > 0"),
    (_p(min=16.5), "--search-space.units.min", "must be an integer"),
    (json.dumps([{"name": "batch_size", "type": "choice", "values": [64, "128"]}]), "--search-space.batch_size.values",
     "must all be numbers, all strings or all booleans"),
    (json.dumps([{"name": "learning_rate", "type": "float", "min": 1e-4, "max": 1e-1, "step": 1e-7}]),
     "--search-space.learning_rate.step", "more than 1000 values"),
    (json.dumps([{"name": "layers", "type": "int", "min": 1, "max": 3}]), "--search-space.layers",
     "not a hyperparameter of the tabular model; allowed: num_layers, units, dropout, learning_rate, batch_size"),
    (json.dumps([{"name": "dropout", "type": "float", "min": 0, "max": 1.5}]), "--search-space.dropout", "[0, 1)"),
    (json.dumps([{"name": "units", "type": "int", "min": 16, "max": 10**9}]), "--search-space.units", "[1, 4096]"),
    (json.dumps([{"name": "num_layers", "type": "int", "min": 1, "max": 1000}]), "--search-space.num_layers",
     "[1, 16]"),
    (json.dumps([{"name": "batch_size", "type": "choice", "values": [64, 10**7]}]), "--search-space.batch_size",
     "[1, 65536]"),
    (json.dumps([{"name": "learning_rate", "type": "float", "min": 1e-3, "max": 50}]), "--search-space.learning_rate",
     "(0, 1]"),
    (json.dumps([{"type": "int", "min": 1, "max": 3}]), "--search-space[0].name", "not a usable name"),
    ("[]", "--search-space", "non-empty list"),
    ("[{oops", "--search-space", "neither valid JSON nor YAML"),
    ("/nonexistent/space.yaml", "--search-space", "file not found"),
]


def _oracle(tmp_path, *flags):
    run_root = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "trainer", "oracle", "--run-root", str(run_root), "--port", "1",
                           "--xcom-file", str(tmp_path / "x.json"), *flags],
                          capture_output=True, text=True, env=env(), timeout=120)
    return proc, run_root


def _assert_refused(proc, run_root, tmp_path, field, reason):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), proc.stderr
    assert reason in lines[0]
    assert not run_root.exists() and not (tmp_path / "x.json").exists(), "nothing may be written on bad input"


@pytest.mark.parametrize("space,field,reason", BAD_SPACES, ids=[b[1].split(".", 1)[-1] + ":" + b[2][:20] for b in BAD_SPACES])
def test_bad_search_space_exits_2_naming_the_parameter(tmp_path, space, field, reason):
    proc, run_root = _oracle(tmp_path, "--search-space", space)
    _assert_refused(proc, run_root, tmp_path, field, reason)


@pytest.mark.parametrize("objective, direction", [("val_auc", "max"), ("val_accuracy", "max"), ("val_mae", "min"),
                                                  ("val_my_error", "min")])
def test_a_hand_run_search_takes_the_objectives_direction(objective, direction):
    """`python -m trainer oracle --objective val_auc` minimised AUC: --direction defaulted to min."""
    from trainer.tuning.settings import from_args

    from tune_contract.steps import OracleArgs

    args = OracleArgs.from_argv(["--run-root", "/tmp/never-written", "--port", "1", "--objective", objective])
    assert from_args(args).direction == direction
    # a metric the contract does not know (a user model's own) may go either way
    if objective == "val_my_error":
        assert from_args(args.replace(direction="max")).direction == "max"


BAD_FLAGS = [
    (["--max-trials", "0"], "--max-trials", "must be >= 1"),
    (["--executions-per-trial", "0"], "--executions-per-trial", "must be >= 1"),
    (["--algorithm", "annealing"], "--algorithm", "allowed: random, bayesian, hyperband, grid"),
    (["--direction", "up"], "--direction", "allowed: min, max"),
    (["--algorithm", "grid"], "--search-space.learning_rate", "needs every parameter discrete"),
    (["--objective-function", "rosenbrock"], "--objective-function", "allowed: branin, sleep"),
    (["--objective-function", "branin", "--objective", "val_mae"], "--objective", "reports 'value'"),
    (["--objective-function", "branin", "--direction", "max"], "--direction", "minimised"),
    (["--objective", "val_auc", "--direction", "min"], "--direction", "must be 'max' for val_auc"),
    (["--lease-seconds", "0"], "--lease-seconds", "must be > 0 and <= 86400"),
    (["--deadline-seconds", "soon"], "--deadline-seconds", "number of seconds"),
    (["--standby-tuners", "some"], "--standby-tuners", "an integer >= 0 and <= 256 or 'all'"),
    (["--standby-tuners", "-1"], "--standby-tuners", "an integer >= 0 and <= 256 or 'all'"),
]


@pytest.mark.parametrize("flags,field,reason", BAD_FLAGS, ids=[" ".join(b[0]) for b in BAD_FLAGS])
def test_bad_oracle_flags_exit_2(tmp_path, flags, field, reason):
    proc, run_root = _oracle(tmp_path, *flags)
    _assert_refused(proc, run_root, tmp_path, field, reason)


@pytest.mark.parametrize("flags,field,reason", [
    (["--tuner-id", "chief-1"], "--tuner-id", "must not contain 'chief'"),
    (["--tuner-id", "a/b"], "--tuner-id", "letters, digits"),
    (["--tuner-id", "tuner-0", "--oracle-address", "nowhere"], "--oracle-address", "HOST:PORT"),
    (["--tuner-id", "tuner-0", "--oracle-address", "127.0.0.1:1"], "--run-root", "no prepared data"),
])
def test_bad_tune_flags_exit_2(tmp_path, flags, field, reason):
    run_root = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "trainer", "tune", "--run-root", str(run_root),
                           "--xcom-file", str(tmp_path / "x.json"), *flags],
                          capture_output=True, text=True, env=env(), timeout=120)
    _assert_refused(proc, run_root, tmp_path, field, reason)


def test_objective_step_evaluates_branin_at_its_minimum(tmp_path):
    out = tmp_path / "x.json"
    proc = subprocess.run([sys.executable, "-m", "trainer", "objective", "--run-root", str(tmp_path), "--function", "branin",
                           "--hyperparameters", json.dumps({"x1": 3.141592653589793, "x2": 2.275}), "--xcom-file", str(out)],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["value"] == pytest.approx(0.397887, abs=1e-6)
    assert result["hyperparameters"] == {"x1": 3.141592653589793, "x2": 2.275}


def test_objective_step_refuses_a_point_outside_the_space(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainer", "objective", "--run-root", str(tmp_path), "--function", "branin",
                           "--hyperparameters", json.dumps({"x1": 11}), "--xcom-file", str(tmp_path / "x.json")],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --hyperparameters.x1: must be a number in [-5.0, 10.0]")
