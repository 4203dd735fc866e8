"""`python -m trainer <step> [flags]`: one entry point for every pod of the workflow.

Each step lives in its own module exposing `HELP`, `add_arguments(parser)` and
`run(args) -> dict`; modules import TensorFlow inside `run`, so `--help` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from trainer.errors import BadInput
from trainer.results import write_result

STEPS = {
    "prepare": "trainer.prepare",
    "oracle": "trainer.tuning.oracle_step",
    "tune": "trainer.tuning.tune_step",
    "train": "trainer.training",
    "evaluate": "trainer.evaluation",
    "objective": "trainer.tuning.benchmarks",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, module_name in STEPS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # a step not written yet (its module or its package missing) is simply not offered
            if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        p.add_argument("--run-root", default=os.environ.get("TRAINER_RUN_ROOT"),
                       help="storage prefix of this DAG run, {root}/runs/{run_id} (local path or gs://)")
        p.add_argument("--xcom-file", default=os.environ.get("TRAINER_XCOM_FILE"),
                       help="where the step's JSON result is written (default /airflow/xcom/return.json)")
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    if not args.run_root:
        print("error: --run-root: required (or set TRAINER_RUN_ROOT)", file=sys.stderr)
        return 2
    try:
        result = args._module.run(args)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # one-line reason for the orchestrator, full trace for the log
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    write_result(args.xcom_file, result)
    return 0
