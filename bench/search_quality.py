"""Benchmark 1: search quality on Branin (x1 in [-5, 10], x2 in [0, 15]), 16 evaluations, 4 at a time.

Our oracle runs through the real distributed path: a chief (`python -m trainer oracle`) and 4
workers (`tune --objective-function branin`) on 127.0.0.1. scikit-optimize's GP `Optimizer`
runs in this process with ask(4)/tell, as in its parallel-optimization example (the anchor
the Kubeflow article quotes: best 0.808 after 16 evaluations; global minimum 0.397887).

- random, bayesian: one search per seed.
- grid: a 4x4 grid (step 5 on both axes: exactly 16 points) is deterministic, so it runs once.
- hyperband is left out: Branin has no fidelity (the value does not change with epochs), so
  successive halving only re-evaluates points it already knows, and with one epoch it is
  random search.

The workers start before the chief and wait for it (the tune step retries an unreachable
chief), so all four ask for their first trial together; each evaluation sleeps 1 s so that
four trials really run at once. The achieved concurrency is measured from the chief's log.
Run with the trainer venv (TensorFlow, Keras Tuner, scikit-optimize).
"""
from __future__ import annotations

import json
import math
import statistics
import subprocess
import time
from pathlib import Path

from common import Step, Workdir, emit, free_port, parse_args, r, summary, trial_events

EVALS, PARALLEL = 16, 4
PUBLISHED_SKOPT = 0.808
GLOBAL_MIN = 0.397887
GRID_SPACE = [{"name": "x1", "type": "float", "min": -5.0, "max": 10.0, "step": 5.0},
              {"name": "x2", "type": "float", "min": 0.0, "max": 15.0, "step": 5.0}]
def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def skopt_search(seed: int) -> dict:
    """scikit-optimize's parallel example, stopped at 16 evaluations (4 rounds of ask(4))."""
    from skopt import Optimizer
    from skopt.space import Real

    started = time.monotonic()
    optimizer = Optimizer(dimensions=[Real(-5.0, 10.0), Real(0.0, 15.0)], random_state=seed, base_estimator="gp")
    for _ in range(EVALS // PARALLEL):
        points = optimizer.ask(n_points=PARALLEL)
        optimizer.tell(points, [branin(*p) for p in points])
    return {"seed": seed, "best": min(optimizer.yi), "seconds": r(time.monotonic() - started, 1)}


def concurrency(chief_log: Path, worker_logs: list[Path]) -> dict:
    """Trials running at once (the chief's 'trial X -> tuner' / 'ended by' lines), and how long
    a worker waits between the end of its trial and the start of the next (the chief's answer)."""
    events = sorted((t, 1 if kind == "->" else -1) for t, kind in trial_events(chief_log))
    gaps = []
    for log in worker_logs:
        ends = [t for t, kind in trial_events(log) if kind == "ended:"]
        begins = [t for t, kind in trial_events(log) if kind == "begins"]
        gaps += [b - e for e, b in zip(ends, begins[1:])]
    running, peak, area = 0, 0, 0.0
    for (t, delta), (t_next, _) in zip(events, events[1:] + events[-1:]):
        running += delta
        peak = max(peak, running)
        area += running * (t_next - t)
    span = events[-1][0] - events[0][0] if events else 0.0
    return {"peak": peak, "mean": r(area / span, 2) if span else None, "search_seconds": r(span, 1),
            "worker_wait_median": r(statistics.median(gaps), 2) if gaps else None,
            "worker_wait_max": r(max(gaps), 2) if gaps else None}


def our_search(workdir: Path, algorithm: str, seed: int, sleep: float) -> dict:
    run_root = workdir / f"{algorithm}-{seed}" / "runs" / "bench"
    run_root.mkdir(parents=True)
    port = free_port()
    flags = ["--run-root", str(run_root), "--algorithm", algorithm, "--objective-function", "branin",
             "--max-trials", str(EVALS), "--epochs", "1", "--seed", str(seed),
             *(["--search-space", json.dumps(GRID_SPACE)] if algorithm == "grid" else [])]
    started = time.monotonic()
    tuners = [Step(f"{algorithm}-{seed}-tuner-{i}", ["tune", *flags, "--tuner-id", f"tuner-{i}",
                                                      "--oracle-address", f"127.0.0.1:{port}", "--poll-seconds", "0.2",
                                                      "--heartbeat-seconds", "2", "--sleep-seconds", str(sleep)], workdir)
              for i in range(PARALLEL)]
    chief = Step(f"{algorithm}-{seed}-chief", ["oracle", *flags, "--port", str(port), "--lease-seconds", "60"], workdir)
    try:
        result = chief.result(timeout=300)  # a healthy search takes well under 2 minutes here
        for t in tuners:
            t.result(timeout=120)
    except subprocess.TimeoutExpired:
        # Recorded, not fatal: a hung chief (none in bench/RESULTS.md) is reported; the other runs still count.
        return {"seed": seed, "error": f"hung: no result after {time.monotonic() - started:.0f}s",
                "completed_trials_logged": sum(1 for _, k in trial_events(chief.log) if k == "ended by")}
    finally:
        for p in (chief, *tuners):
            p.kill()
    values = [t["objective"] for t in result["trials"]]
    return {"seed": seed, "best": min(values), "completed": result["completed"],
            "best_point": result["trials"][0]["hyperparameters"], "seconds": r(time.monotonic() - started, 1),
            "concurrency": concurrency(chief.log, [t.log for t in tuners])}


def main() -> None:
    args = parse_args(__doc__)
    # Far apart: Keras Tuner's random sampling steps its seed by one per value drawn, so with two
    # parameters --seed 1 and --seed 3 draw the same points shifted by one trial. Seed 1 is the
    # published scikit-optimize run (random_state=1).
    seeds = [1] if args.quick else [1 + 1000 * i for i in range(5)]
    algorithms = ["random", "bayesian"] + ([] if args.quick else ["grid"])
    runs: dict[str, list[dict]] = {"skopt_gp": [skopt_search(s) for s in seeds]}
    with Workdir(args.workdir, "search") as workdir:
        for algorithm in algorithms:
            runs[algorithm] = []
            for seed in (seeds[:1] if algorithm == "grid" else seeds):
                run = our_search(workdir, algorithm, seed, sleep=1.0)
                runs[algorithm].append(run)
                if "error" in run:
                    print(f"  {algorithm:8s} seed {seed}: {run['error']} ({run['completed_trials_logged']} trials ended)",
                          flush=True)
                    continue
                print(f"  {algorithm:8s} seed {seed}: best {run['best']:.4f} in {run['seconds']}s "
                      f"(trials at once: mean {run['concurrency']['mean']}, peak {run['concurrency']['peak']}; "
                      f"worker wait between trials: median {run['concurrency']['worker_wait_median']}s, "
                      f"max {run['concurrency']['worker_wait_max']}s)", flush=True)
    figures = {name: {**{k: r(v, 4) if isinstance(v, float) else v
                         for k, v in summary([x["best"] for x in rs if "error" not in x]).items()},
                      "failed": sum("error" in x for x in rs)}
               for name, rs in runs.items() if any("error" not in x for x in rs)}
    print(f"\nBranin, {EVALS} evaluations, {PARALLEL} at a time (global min {GLOBAL_MIN}; published skopt {PUBLISHED_SKOPT})")
    print(f"  {'method':10s} {'median best':>12s} {'worst best':>11s} {'seeds':>6s} {'hung':>5s}")
    for name, f in figures.items():
        print(f"  {name:10s} {f['median']:12.4f} {f['worst']:11.4f} {f['n']:6d} {f['failed']:5d}")
    emit("search_quality", {"quick": args.quick, "evaluations": EVALS, "parallel": PARALLEL,
                            "published_skopt_best": PUBLISHED_SKOPT, "global_minimum": GLOBAL_MIN,
                            "excluded": {"hyperband": "Branin has no fidelity: successive halving only re-runs known points"},
                            "figures": figures, "runs": runs,
                            "mean_concurrency": {a: r(statistics.mean(x["concurrency"]["mean"] or 0
                                                                      for x in runs[a] if "error" not in x), 2)
                                                 for a in algorithms if any("error" not in x for x in runs[a])}},
         args.out)


if __name__ == "__main__":
    main()
