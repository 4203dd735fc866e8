"""`make bench`: run the benchmarks of issue 6, each in its own virtualenv, print their figures
and write them all to bench/results.json with the machine's cores, memory, load and date.

    python3 bench/run.py [--quick] [--snapshot] [NAME ...]     NAME in: search scaling overhead serving preemption quality diamonds gp-limit

Measurements, not tests: a benchmark that crashes is reported (exit 1), figures are never judged.
Naming benchmarks re-runs just those and keeps the other figures already in the results file.
--snapshot measures the committed HEAD in a temporary copy (with this bench/ and the same
virtualenvs), so that edits to the working tree during the run do not change what is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
from common import AIRFLOW_PY, SERVING_PY, TRAINER_PY, machine  # noqa: E402

# name -> (interpreter, script, extra args); in this order. scaling and overhead share one Airflow.
BENCHMARKS = {
    "search": (TRAINER_PY, "search_quality.py"),
    "scaling": (AIRFLOW_PY, "dag_runs.py"),
    "overhead": (AIRFLOW_PY, "dag_runs.py"),
    "serving": (SERVING_PY, "serving_latency.py"),
    "preemption": (TRAINER_PY, "preemption.py"),
    "quality": (TRAINER_PY, "model_quality.py"),
    "classifier": (TRAINER_PY, "classifier_quality.py"),
    "diamonds": (TRAINER_PY, "diamonds_epochs.py"),
    "gp-limit": (TRAINER_PY, "gp_parallel_limit.py"),
}
DAG_BENCHMARKS = ("scaling", "overhead")


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip()
    return head + ("+dirty" if dirty else "")


def snapshot(argv: list[str], out: Path) -> int:
    """Re-run this script from a copy of HEAD (+ this bench/), writing to the original results file."""
    root = Path(tempfile.mkdtemp(prefix="bench-snapshot-"))
    try:
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
        shutil.rmtree(root / "bench", ignore_errors=True)
        shutil.copytree(BENCH, root / "bench", ignore=shutil.ignore_patterns("__pycache__", "results.json"))
        (root / ".venv").symlink_to(REPO / ".venv")
        rest = [a for a in argv if a != "--snapshot"]
        head = commit().split("+")[0]
        env = {**os.environ, "BENCH_COMMIT": f"{head} (snapshot of HEAD)"}
        return subprocess.run([sys.executable, str(root / "bench" / "run.py"), *rest, "--out", str(out)], env=env).returncode
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_one(python: str, script: str, args: list[str], log: Path, timeout: float) -> int:
    """Its stdout (the figures) goes to ours; its stderr (TensorFlow's noise) to `log`."""
    with open(log, "w") as err:
        return subprocess.run([python, str(BENCH / script), *args], stderr=err, timeout=timeout).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller runs: a few-minute smoke run")
    parser.add_argument("--snapshot", action="store_true", help="measure the committed HEAD in a temporary copy")
    parser.add_argument("--out", default=str(BENCH / "results.json"))
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    out = Path(args.out).resolve()
    if args.snapshot:
        return snapshot(sys.argv[1:], out)

    selected = args.names or list(BENCHMARKS)
    quick = ["--quick"] if args.quick else []
    results = {"quick": args.quick, "commit": os.environ.get("BENCH_COMMIT") or commit(), "machine": machine(),
               "benchmarks": {}, "errors": {}}
    # Re-running some benchmarks keeps the others' figures (each carries its own machine, load and date).
    earlier = json.loads(out.read_text()) if args.names and out.exists() else None
    if earlier and earlier.get("quick") == args.quick:
        results["benchmarks"] = {k: v for k, v in earlier["benchmarks"].items() if k not in selected}
        results["earlier_commit"] = earlier.get("commit")
    scratch = Path(tempfile.mkdtemp(prefix="bench-out-"))
    started = time.monotonic()
    try:
        for name in selected:
            python, script = BENCHMARKS[name]
            if name in DAG_BENCHMARKS and name != next(n for n in DAG_BENCHMARKS if n in selected):
                continue  # already run together with the other DAG benchmark
            dag = [n for n in DAG_BENCHMARKS if n in selected]
            extra = ["--only", ",".join(dag), "--out-dir", str(scratch)] if name in DAG_BENCHMARKS else \
                ["--out", str(scratch / f"{name}.json")]
            names = dag if name in DAG_BENCHMARKS else [name]
            print(f"\n=== {' + '.join(names)} ({Path(python).parts[-3]} venv) ===", flush=True)
            t = time.monotonic()
            log = scratch / f"{name}.stderr.log"
            try:
                code = run_one(python, script, [*quick, *extra], log, timeout=3 * 3600)
            except subprocess.TimeoutExpired:
                code = "timeout"
            for n in names:
                file = scratch / f"{n}.json"
                if code == 0 and file.exists():
                    results["benchmarks"][n] = {**json.loads(file.read_text()), "commit": results["commit"],
                                                "wall_seconds": round(time.monotonic() - t)}
                else:
                    tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                    results["errors"][n] = {"exit": code, "stderr_tail": tail}
                    print(f"!!! {n} failed ({code}):\n" + "\n".join(tail), flush=True)
    finally:
        results["machine_at_end"] = machine()
        results["total_seconds"] = round(time.monotonic() - started)
        out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{len(selected)} benchmark(s) in {results['total_seconds']}s, "
          f"load {results['machine']['loadavg']} -> {results['machine_at_end']['loadavg']}; figures in {out}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
