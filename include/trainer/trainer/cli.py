"""`python -m trainer <step> [flags]`: one entry point for every pod of the workflow.

Each step's flags are its dataclass in `tune_contract.steps` (the one the Airflow side builds
the command line with); each step lives in a module exposing `run(args) -> dict`, imported
only once its flags are parsed, so `--help` and a flag mistake never load TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from tune_contract.steps import STEP_ARGS

from trainer.errors import BadInput
from trainer.results import write_result

STEPS = {
    "prepare": "trainer.prepare",
    "oracle": "trainer.tuning.oracle_step",
    "tune": "trainer.tuning.tune_step",
    "train": "trainer.training.run",
    "evaluate": "trainer.evaluation.run",
    "objective": "trainer.tuning.objective_step",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name in STEPS:
        args_class = STEP_ARGS[name]
        p = sub.add_parser(name, help=args_class.HELP, description=args_class.HELP)
        args_class.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parsed = build_parser().parse_args(argv)
    step = parsed.step
    try:
        args = STEP_ARGS[step].from_args(parsed)
        result = importlib.import_module(STEPS[step]).run(args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one-line reason for the orchestrator, full trace for the log
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    write_result(args.xcom_file, result)
    return 0
