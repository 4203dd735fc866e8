"""`StepArgs.from_args` enforces every range and closed set a step's flags state
(`tune_contract.steps.flag(minimum=, maximum=, choices=)`), naming the flag and what it allows,
before a step does anything (the trainer exits 2 on it)."""
from __future__ import annotations

import dataclasses

import pytest

from tune_contract.errors import BadInput
from tune_contract.steps import STEP_ARGS, EvaluateArgs, ObjectiveArgs, OracleArgs, PrepareArgs, TrainArgs, TuneArgs

BASE = {
    PrepareArgs: ["--run-root", "/r"],
    OracleArgs: ["--run-root", "/r", "--port", "8000"],
    TuneArgs: ["--run-root", "/r"],
    TrainArgs: ["--run-root", "/r", "--rank", "0"],
    EvaluateArgs: ["--run-root", "/r", "--rank", "0", "--model-path", "/m"],
    ObjectiveArgs: ["--run-root", "/r", "--function", "branin"],
}

REFUSED = [
    (PrepareArgs, "--eval-fraction", "0", "must be > 0 and < 1, got 0.0"),
    (PrepareArgs, "--eval-fraction", "1", "must be > 0 and < 1, got 1.0"),
    (PrepareArgs, "--sample-rows", "1", "must be >= 2, got 1"),
    (PrepareArgs, "--seed", "-1", "must be >= 0 and <= 2147483647, got -1"),
    (OracleArgs, "--max-trials", "0", "must be >= 1 and <= 10000, got 0"),
    (OracleArgs, "--max-trials", "10001", "must be >= 1 and <= 10000, got 10001"),
    (OracleArgs, "--executions-per-trial", "21", "must be >= 1 and <= 20, got 21"),
    (OracleArgs, "--epochs", "0", "must be >= 1 and <= 10000, got 0"),
    (OracleArgs, "--seed", "2147483648", "must be >= 0 and <= 2147483647"),
    (OracleArgs, "--port", "0", "must be >= 1 and <= 65535, got 0"),
    (OracleArgs, "--port", "65536", "must be >= 1 and <= 65535, got 65536"),
    (OracleArgs, "--lease-seconds", "0", "must be > 0 and <= 86400, got 0.0"),
    (OracleArgs, "--lease-seconds", "86401", "must be > 0 and <= 86400, got 86401.0"),
    (OracleArgs, "--lease-seconds", "inf", "must be > 0 and <= 86400, got inf"),
    (OracleArgs, "--deadline-seconds", "0", "must be > 0 and <= 604800, got 0.0"),
    (OracleArgs, "--max-handoffs", "-1", "must be >= 0, got -1"),
    (OracleArgs, "--standby-tuners", "-1", "must be an integer >= 0 and <= 256 or 'all', got -1"),
    (OracleArgs, "--standby-tuners", "some", "must be an integer >= 0 and <= 256 or 'all', got 'some'"),
    (OracleArgs, "--algorithm", "annealing", "unknown value 'annealing'; allowed: random, bayesian"),
    (TuneArgs, "--heartbeat-seconds", "0", "must be > 0, got 0.0"),
    (TuneArgs, "--poll-seconds", "nan", "must be > 0, got nan"),
    (TuneArgs, "--oracle-wait-seconds", "-1", "must be > 0, got -1.0"),
    (TuneArgs, "--sleep-seconds", "-0.5", "must be >= 0 and <= 3600.0, got -0.5"),
    (TrainArgs, "--rank", "-1", "must be >= 0, got -1"),
    (TrainArgs, "--epochs", "0", "must be >= 1 and <= 100000, got 0"),
    (TrainArgs, "--patience", "-1", "must be >= 0 and <= 10000, got -1"),
    (TrainArgs, "--objective", "val_f1", "unknown value 'val_f1'"),
    (EvaluateArgs, "--rank", "-1", "must be >= 0, got -1"),
    (EvaluateArgs, "--mae-upper-bound", "0", "must be > 0, got 0.0"),
    (EvaluateArgs, "--mae-upper-bound", "inf", "must be > 0, got inf"),
    (EvaluateArgs, "--max-mae-increase", "-0.5", "must be >= 0, got -0.5"),
    (EvaluateArgs, "--max-mae-increase", "nan", "must be >= 0, got nan"),
    (EvaluateArgs, "--auc-lower-bound", "0", "must be > 0 and <= 1, got 0.0"),
    (EvaluateArgs, "--auc-lower-bound", "1.5", "must be > 0 and <= 1, got 1.5"),
    (EvaluateArgs, "--accuracy-lower-bound", "0", "must be > 0 and <= 1, got 0.0"),
    (EvaluateArgs, "--max-auc-decrease", "1.01", "must be >= 0 and <= 1, got 1.01"),
    (EvaluateArgs, "--max-auc-decrease", "-0.1", "must be >= 0 and <= 1, got -0.1"),
    (ObjectiveArgs, "--epochs", "0", "must be >= 1 and <= 10000, got 0"),
    (ObjectiveArgs, "--sleep-seconds", "3601", "must be >= 0 and <= 3600.0, got 3601.0"),
]


@pytest.mark.parametrize("cls,flag,value,reason", REFUSED, ids=[f"{c.STEP} {f} {v}" for c, f, _, v in
                                                                [(r[0], r[1], None, r[2]) for r in REFUSED]])
def test_from_args_refuses_a_value_out_of_range_naming_the_flag_and_the_range(cls, flag, value, reason):
    with pytest.raises(BadInput) as caught:
        cls.from_argv([*BASE[cls], f"{flag}={value}"])
    assert caught.value.field == flag
    assert reason in caught.value.reason


ACCEPTED = [
    (PrepareArgs, "--eval-fraction", "0.5"), (PrepareArgs, "--sample-rows", "2"), (PrepareArgs, "--seed", "0"),
    (OracleArgs, "--max-trials", "1"), (OracleArgs, "--max-trials", "10000"), (OracleArgs, "--lease-seconds", "3"),
    (OracleArgs, "--standby-tuners", "0"), (OracleArgs, "--standby-tuners", "all"), (OracleArgs, "--port", "65535"),
    (TuneArgs, "--sleep-seconds", "0"), (TrainArgs, "--patience", "0"), (EvaluateArgs, "--max-mae-increase", "0"),
    (EvaluateArgs, "--auc-lower-bound", "1"), (EvaluateArgs, "--max-auc-decrease", "0"),
    (EvaluateArgs, "--max-auc-decrease", "1"),
]


@pytest.mark.parametrize("cls,flag,value", ACCEPTED, ids=[f"{c.STEP} {f} {v}" for c, f, v in ACCEPTED])
def test_from_args_takes_the_ends_of_each_inclusive_range(cls, flag, value):
    args = cls.from_argv([*BASE[cls], f"{flag}={value}"])
    held = getattr(args, flag[2:].replace("-", "_"))
    assert held == (value if value == "all" else float(value))


def test_every_default_is_within_its_own_range_and_choices():
    for cls in STEP_ARGS.values():
        for f in dataclasses.fields(cls):
            spec = cls.flag_spec(f.name)
            if spec.default is None or spec.kind in ("string", "json"):
                assert not spec.choices or spec.default is None or spec.default in spec.choices, (cls.STEP, f.name)
                continue
            if isinstance(spec.default, str):
                assert spec.default in spec.choices, (cls.STEP, f.name)
            else:
                assert spec.in_range(spec.default), (cls.STEP, f.name, spec.default, spec.range_text())


def test_the_defaults_of_a_run_seed_agree_across_steps():
    """One seed seeds the split, the search and training (the form's `seed`)."""
    defaults = {cls.flag_spec("seed").default for cls in (PrepareArgs, OracleArgs, TuneArgs, TrainArgs)}
    assert len(defaults) == 1


def test_help_states_the_range():
    import argparse

    parser = argparse.ArgumentParser()
    OracleArgs.add_arguments(parser)
    assert ">= 1 and <= 10000" in parser.format_help().replace("\n", " ").replace("  ", " ")
