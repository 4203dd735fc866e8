"""Ours against BoTorch in BoTorch's batch protocol (issue 25), for `make bench BENCH=search`.

The protocol of the BoTorch reference (../shared/probes/search/bench.py, bench/botorch_batch.py):
8 start points asked together, then rounds of 4 asked together, each round evaluated and told
before the next is asked, until the budget; the simple regret (best value found minus the
global minimum) after 16, 32, 48 (Branin) and 48, 96 (Hartmann-6) evaluations.

Ours runs through `search_sim.KerasTunerMethod`, i.e. the chief's own leased oracle
(`make_oracle`): 8 tuners ask for their first trial with no result in (our Sobol start), then
4 tuners ask at once, each asked trial still running (our kriging believers) when the next is
asked. BoTorch runs in its bench-only environment (`.venv/bench-botorch`, pip: see the
Makefile), one process per method, the seeds split over `JOBS` processes.

Run with the trainer venv (PYTHONPATH include/trainer), from search_quality.py or alone:
    python bench/search_batch.py [--seeds N] [--only ours|botorch] [--problems branin,hartmann6]
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "include" / "trainer"))

from trainer.tuning.algorithms import benchmarks  # noqa: E402

BOTORCH_PY = REPO / ".venv" / "bench-botorch" / "bin" / "python"
INIT, Q = 8, 4
# function -> (evaluations of the run, checkpoints reported, global minimum)
PROBLEMS = {"branin": (48, (16, 32, 48), benchmarks.BRANIN_MINIMUM),
            "hartmann6": (96, (48, 96), benchmarks.HARTMANN6_MINIMUM)}
BOTORCH_METHODS = ("kb", "qlogei")
JOBS = 2  # processes at once (the machine's 2 cores, shared)
SEEDS = 30


def shorten(function: str, budget: int) -> None:
    """A shorter run of `function` (its later checkpoints dropped)."""
    _, checkpoints, minimum = PROBLEMS[function]
    PROBLEMS[function] = (budget, tuple(n for n in checkpoints if n <= budget), minimum)


def ours(function: str, budget: int, seed: int, algorithm: str = "gp", **options) -> dict:
    """One search of ours in the batch protocol: the regret after each evaluation."""
    import search_sim as sim

    started = time.process_time()
    method = sim.KerasTunerMethod(algorithm, function, budget, seed, **options)
    values: list[float] = []
    try:
        while len(values) < budget:
            n = INIT if not values else min(Q, budget - len(values))
            asked = [(f"tuner-{i}", method.ask(f"tuner-{i}")) for i in range(n)]
            for worker, got in asked:
                assert got is not None, (function, seed, len(values))
            for worker, (handle, point) in asked:
                value = benchmarks.evaluate(function, point, 0)
                method.tell(worker, handle, value)
                values.append(value)
    finally:
        method.close()
    minimum = PROBLEMS[function][2]
    best = [min(values[:n]) - minimum for n in range(1, budget + 1)]
    return {"function": function, "method": algorithm, "seed": seed, "regret": best,
            "cpu_seconds": round(time.process_time() - started, 2)}


def botorch(function: str, method: str, budget: int, seeds: list[int]) -> list[dict]:
    out = subprocess.run([str(BOTORCH_PY), str(BENCH / "botorch_batch.py"), function, method, str(budget),
                          *map(str, seeds)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def botorch_versions() -> dict:
    out = subprocess.run([str(BOTORCH_PY), "-c", "import torch, botorch, gpytorch; "
                          "print(torch.__version__, botorch.__version__, gpytorch.__version__)"],
                         capture_output=True, text=True, check=True).stdout.split()
    size = subprocess.run(["du", "-sm", str(BOTORCH_PY.parents[1])], capture_output=True, text=True).stdout.split()
    return {"torch": out[0], "botorch": out[1], "gpytorch": out[2], "env_mb": int(size[0]) if size else None}


def quartiles(values: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": median, "q1": q1, "q3": q3, "n": len(values)}


def summarise(runs: dict[tuple[str, str], list[dict]]) -> dict:
    """(function, method) -> {checkpoint: quartiles of the regret}."""
    figures: dict = {}
    for (function, method), rows in runs.items():
        for n in PROBLEMS[function][1]:
            figures.setdefault(f"{function}_{n}", {})[method] = quartiles([row["regret"][n - 1] for row in rows])
    return figures


def measure(seeds: list[int], only: str | None = None, functions=tuple(PROBLEMS), ours_algorithms=("gp",)) -> dict:
    started = time.monotonic()
    jobs = []
    if only != "ours":
        if not BOTORCH_PY.exists():
            raise SystemExit(f"{BOTORCH_PY} missing: `make {BOTORCH_PY.parents[1].relative_to(REPO)}/.done` builds it")
        for function in functions:
            for method in BOTORCH_METHODS:
                for part in range(JOBS):
                    jobs.append(("botorch", function, method, seeds[part::JOBS]))
    runs: dict = {}
    with ThreadPoolExecutor(JOBS) as pool:
        futures = [(f, m, pool.submit(botorch, f, m, PROBLEMS[f][0], s)) for _, f, m, s in jobs]
        if only != "botorch":  # ours in this process, beside BoTorch's processes
            for algorithm in ours_algorithms:
                for function in functions:
                    runs[(function, algorithm)] = [ours(function, PROBLEMS[function][0], seed, algorithm)
                                                   for seed in seeds]
        for function, method, future in futures:
            runs.setdefault((function, f"botorch_{method}"), []).extend(future.result())
    cpu = {f"{f}/{m}": round(statistics.mean(r["cpu_seconds"] for r in rows), 2) for (f, m), rows in runs.items()}
    return {"protocol": {"start": INIT, "batch": Q}, "seeds": seeds, "figures": summarise(runs),
            "cpu_seconds_per_search": cpu, "wall_seconds": round(time.monotonic() - started),
            "versions": botorch_versions() if only != "ours" else None,
            "runs": {f"{f}/{m}": rows for (f, m), rows in runs.items()}}


def print_table(result: dict) -> None:
    for problem, methods in result["figures"].items():
        print(f"\n{problem}: simple regret, {INIT} start points then batches of {Q}")
        for name, f in sorted(methods.items(), key=lambda kv: kv[1]["median"]):
            print(f"  {name:16s} median {f['median']:9.4g}  quartiles {f['q1']:9.4g} {f['q3']:9.4g}  seeds {f['n']}")


def summary_line(result: dict, ours_name: str = "gp") -> str:
    f = result["figures"]
    h, b = f["hartmann6_48"], f["branin_32"]
    return (f"search summary: hartmann6_48 ours={ours_name} regret={h[ours_name]['median']:.4g} | "
            f"botorch_kb regret={h['botorch_kb']['median']:.4g} | branin32 ours regret={b[ours_name]['median']:.4g} | "
            f"botorch_kb regret={b['botorch_kb']['median']:.4g} | seeds={h[ours_name]['n']}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--only", choices=("ours", "botorch"))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--algorithms", default="gp")
    parser.add_argument("--evals", default="", help="e.g. hartmann6=48: a shorter run (its later checkpoints dropped)")
    parser.add_argument("--out")
    args = parser.parse_args()
    for item in filter(None, args.evals.split(",")):
        function, budget = item.split("=")
        shorten(function, int(budget))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    result = measure(seeds, args.only, tuple(args.problems.split(",")), tuple(args.algorithms.split(",")))
    print_table(result)
    print(f"\n{result['wall_seconds']}s; cpu seconds per search {result['cpu_seconds_per_search']}")
    if args.out:
        Path(args.out).write_text(json.dumps(result) + "\n")
    if args.only is None and "hartmann6" in args.problems and "branin" in args.problems:
        print(summary_line(result, args.algorithms.split(",")[0]))


if __name__ == "__main__":
    main()
