"""Benchmark 1: search quality. Which algorithm finds a lower minimum with the same evaluations?

In-process (bench/search_sim.py): the chief's own oracle classes under simulated asynchronous
workers (4 in flight, random durations), on Branin at 16 and 32 evaluations and Hartmann-6 at
48, 30 to 200 widely spaced seeds each (numpy SeedSequence), side by side in one run:
ours (`gp`, the default, and `tpe`), Keras Tuner `random` and `bayesian` behind the same leased oracle, Optuna's TPE
with its defaults, scikit-optimize's GP with ask(4) (the anchor the Kubeflow article quotes:
best 0.808 after 16 evaluations; global minimum 0.397887). Median and quartiles of the best
value per search.

The GP baselines are costly here (scikit-optimize refits its GP for every constant-liar point;
Keras Tuner's Bayesian oracle refits with 20 restarts and restarts its acquisition 50 times per
trial; on this shared 2-core machine one Hartmann-6 search of scikit-optimize took ~4 min):
scikit-optimize runs every seed on Branin-16 (the summary's comparison); elsewhere, and Keras
Tuner's Bayesian everywhere, a GP baseline stops starting seeds after `GP_SECONDS` per problem
(at least `GP_MIN_SEEDS`) and the table says how many seeds it ran. The GP methods take at
most the first `GP_SEEDS` seeds (ours, `gp`, all of them on every problem), the cheap methods
(ours `tpe`, Optuna, Keras Tuner random) all `SEEDS`.

Then a confirmation through the real distributed path: a chief (`python -m trainer oracle
--algorithm gp`) and 4 workers (`tune --objective-function branin`) on 127.0.0.1, 5 seeds; its
median must fall where the median of 5 in-process searches falls 90% of the time (bootstrap).
The workers start before the chief and wait for it, so all four ask for their first trial
together (on a loaded machine they join later, and fewer run at once); each evaluation sleeps
`CHIEF_SLEEP` so that four trials really run at once. Achieved concurrency comes from the
chief's log. Ends with the one-line summary (what gets checked).

Hyperband is left out: Branin has no fidelity (the value does not change with epochs), so
successive halving only re-evaluates points it already knows. Grid is deterministic: a 4x4
grid on Branin-16 (measured 5.931 on 2026-11-28) does not change with the seed.
Run with the trainer venv (TensorFlow, Keras Tuner, Optuna, scikit-optimize).
"""
from __future__ import annotations

import os

# One BLAS thread: the GP baselines' small matrix work ran ~5x the CPU time with OpenBLAS's
# threads fighting over two shared cores. Before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from common import REPO, Step, Workdir, emit, free_port, parse_args, r, trial_events

sys.path.insert(0, str(REPO / "include" / "trainer"))
import search_batch  # noqa: E402
import search_sim as sim  # noqa: E402

EVALS, PARALLEL = 16, sim.PARALLEL
PUBLISHED_SKOPT = 0.808
GLOBAL_MIN = 0.397887
OURS = "gp"  # the default algorithm (tune_contract.enums.DEFAULT_ALGORITHM)
# The cheap methods (well under a CPU second per search) run 200 seeds: with 30, the median of
# ours on Branin-16 moved from 1.60 to 2.23 when only the simulated durations' stream changed.
SEEDS, GP_SEEDS = 200, 30
CHIEF_SEEDS, CHIEF_SLEEP = 5, 0.2
GP_METHODS = ("ours", "skopt_gp", "kt_bayesian")  # a GP fit per point: 30 seeds
GP_SECONDS, GP_MIN_SEEDS = 60.0, 1
METHODS = ("ours", "ours_tpe", "optuna_tpe", "skopt_gp", "kt_random", "kt_bayesian")


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
             "--max-trials", str(EVALS), "--epochs", "1", "--seed", str(seed)]
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


def quartiles(values: list[float]) -> dict:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return {"median": r(median, 4), "q1": r(q1, 4), "q3": r(q3, 4), "n": len(values)}


def median_band(values: list[float], n: int, draws: int = 10000) -> tuple[float, float]:
    """The 5th and 95th percentiles of the median of `n` searches drawn from `values` (a
    bootstrap): where a median of n real-chief searches lands if the two paths search alike.
    Five seeds are too few to compare with the in-process quartiles themselves (a median of 5
    falls outside them 2 times in 10 by chance)."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(values, size=(draws, n)), axis=1)
    return float(np.percentile(medians, 5)), float(np.percentile(medians, 95))


def in_process(seeds: list[int], quick: bool) -> dict:
    """problem -> method -> {median, q1, q3, n, runs}."""
    warnings.filterwarnings("ignore")  # scikit-learn's GP convergence warnings, per fit
    figures: dict[str, dict] = {}
    for problem, (function, budget, minimum) in sim.PROBLEMS.items():
        figures[problem] = {}
        for method in METHODS:
            # the summary compares ours with skopt on Branin-16: that pair always runs every seed
            capped = method == "kt_bayesian" or (method in GP_METHODS and method != "ours" and problem != "branin16")
            if capped and quick and problem != "branin16":
                continue  # a smoke run: the costly baselines on one problem only
            started, runs = time.monotonic(), []
            for seed in (seeds[:GP_SEEDS] if method in GP_METHODS else seeds):
                if capped and len(runs) >= GP_MIN_SEEDS and time.monotonic() - started > GP_SECONDS:
                    break
                runs.append(sim.run(method, function, budget, seed))
            stats = quartiles([x["best"] for x in runs])
            figures[problem][method] = {**stats, "capped": capped and len(runs) < len(seeds),
                                        "cpu_seconds_per_search": r(statistics.mean(x["cpu_seconds"] for x in runs), 2),
                                        "runs": runs}
            print(f"  {problem:13s} {method:12s} median {stats['median']:8.4f}  quartiles {stats['q1']:8.4f} "
                  f"{stats['q3']:8.4f}  seeds {stats['n']:3d}  ({time.monotonic() - started:.0f}s)", flush=True)
    return figures


def table(figures: dict) -> None:
    for problem, methods in figures.items():
        function, budget, minimum = sim.PROBLEMS[problem]
        print(f"\n{problem}: {function}, {budget} evaluations, {PARALLEL} in flight (global min {minimum})")
        print(f"  {'method':12s} {'median':>9s} {'q1':>9s} {'q3':>9s} {'seeds':>6s}")
        for name, f in sorted(methods.items(), key=lambda kv: kv[1]["median"]):
            print(f"  {name:12s} {f['median']:9.4f} {f['q1']:9.4f} {f['q3']:9.4f} {f['n']:6d}")


def main() -> None:
    args = parse_args(__doc__)
    # Widely spaced, unrelated seeds (not 1, 2, 3: Keras Tuner used to replay nearby ones).
    seeds = [int(s) for s in np.random.SeedSequence(20261129).generate_state(5 if args.quick else SEEDS)]
    print(f"in-process: {len(seeds)} seeds, {PARALLEL} simulated workers", flush=True)
    figures = in_process(seeds, args.quick)
    table(figures)

    chief_runs = []
    with Workdir(args.workdir, "search") as workdir:
        for seed in seeds[:2 if args.quick else CHIEF_SEEDS]:
            run = our_search(workdir, OURS, seed, sleep=CHIEF_SLEEP)
            chief_runs.append(run)
            if "error" in run:
                print(f"  chief {OURS} seed {seed}: {run['error']} ({run['completed_trials_logged']} trials ended)", flush=True)
                continue
            print(f"  chief {OURS} seed {seed}: best {run['best']:.4f} in {run['seconds']}s "
                  f"(trials at once: mean {run['concurrency']['mean']}, peak {run['concurrency']['peak']})", flush=True)
    done = [x["best"] for x in chief_runs if "error" not in x]
    ours16 = figures["branin16"]["ours"]
    chief = {**quartiles(done), "failed": sum("error" in x for x in chief_runs), "runs": chief_runs} if done else None
    if chief:
        low, high = median_band([x["best"] for x in ours16["runs"]], chief["n"])
        chief["in_process_band"] = [r(low, 4), r(high, 4)]
        chief["agrees"] = low <= chief["median"] <= high
        print(f"\nthrough the chief: {OURS} branin16 median {chief['median']:.4f} over {chief['n']} seeds; the median of "
              f"{chief['n']} in-process searches falls in {low:.4f}-{high:.4f} 90% of the time: "
              f"{'agrees' if chief['agrees'] else 'DISAGREES'}")
    # Ours against BoTorch in BoTorch's batch protocol (issue 25): 8 start points, then batches of 4.
    print(f"\nagainst BoTorch: {search_batch.INIT} start points then batches of {search_batch.Q}, seeds 0-"
          f"{(3 if args.quick else search_batch.SEEDS) - 1}", flush=True)
    if args.quick:
        search_batch.shorten("hartmann6", 48)
    batch = search_batch.measure(list(range(3 if args.quick else search_batch.SEEDS)))
    search_batch.print_table(batch)
    print(f"  BoTorch {batch['versions']}; {batch['wall_seconds']} s", flush=True)
    emit("search_quality", {"quick": args.quick, "against_botorch": batch, "parallel": PARALLEL, "seeds": seeds, "ours": OURS,
                            "published_skopt_best": PUBLISHED_SKOPT, "global_minimum": GLOBAL_MIN,
                            "gp_cap": {"seconds_per_problem": GP_SECONDS, "min_seeds": GP_MIN_SEEDS},
                            "excluded": {"hyperband": "Branin has no fidelity: successive halving only re-runs known points",
                                         "grid": "deterministic: 5.931 on a 4x4 grid (2026-11-28)"},
                            "figures": figures, "through_the_chief": chief}, args.out)
    b16 = figures["branin16"]  # every method runs every seed here
    print(f"search (4 asynchronous workers): branin16 ours={OURS} median={b16['ours']['median']:.4f} | "
          f"skopt median={b16['skopt_gp']['median']:.4f} | optuna_tpe median={b16['optuna_tpe']['median']:.4f} | "
          f"seeds={b16['ours']['n']}")
    print(search_batch.summary_line(batch, OURS))


if __name__ == "__main__":
    main()
