"""Early stopping with `gp` on a learning-curve benchmark (issue 25, part 3), in-process.

The diamonds benchmark (diamonds_epochs.py) trains real models, minutes per search; this is
the cheap stand-in: the chief's own leased `gp` oracle (search_sim.KerasTunerMethod) under 4
simulated asynchronous workers, each trial reporting one value per epoch through the oracle's
`report_epoch` (the tuners' heartbeat path), the pruning rule deciding as in a real search, a
pruned trial ending scored with its best epoch (as the tuner ends it).

The curves: Hartmann-6's value is the final one, reached after `EPOCHS` epochs; before that a
trial is worse by `GAP * exp(-(epoch - 1) / tau(x))`, where tau = 0.5 + 3 * (1 - x1): trials
with a small x1 learn slowly (a low learning rate), as in a real search, so the ranking after
one or two epochs is not the final one (Hartmann-6's optimum has x1 = 0.20: a slow learner).

Compared, on the same seeds: no early stopping; the median rule with pruned trials fed to the
GP as if their early score were final (`median-as-if-final`, before issue 25); the median rule
with pruned trials as censored results (`median-censored`, `GPOracle.censored_pruning`, now the default). Figures: epochs spent, and the
best score of the search (median and quartiles over seeds).

    PYTHONPATH=include/trainer python bench/early_stopping_sim.py [--seeds N] [--trials N]
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include" / "trainer"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainer.tuning.algorithms import benchmarks  # noqa: E402
from trainer.tuning.algorithms.pruning import Pruning  # noqa: E402
from trainer.tuning.algorithms.seeds import derive  # noqa: E402

EPOCHS, GAP, PARALLEL = 8, 2.0, 4
CONFIGS = {"off": ("none", True), "median-as-if-final": ("median", False), "median-censored": ("median", True)}


def curve(point: dict, epoch: int) -> float:
    x = [float(point[f"x{i}"]) for i in range(1, 7)]
    tau = 0.5 + 3.0 * (1.0 - x[0])
    return benchmarks.hartmann6(x) + GAP * math.exp(-(epoch - 1) / tau)


def search(rule: str, censored: bool, trials: int, seed: int) -> dict:
    import search_sim as sim

    method = sim.KerasTunerMethod("gp", "hartmann6", trials, seed, pruning=Pruning(rule, "value", "min"),
                                  censored_pruning=censored)
    oracle = method.oracle
    durations = random.Random(derive(seed, "bench/epoch-durations"))
    events: list = []  # (time, order, worker, trial, point, epoch, values so far)
    order, asked, epochs, scores, pruned = 0, 0, 0, [], 0

    def start(worker: str, now: float) -> None:
        nonlocal order, asked
        got = method.ask(worker) if asked < trials else None
        if got is None:
            return
        asked, order = asked + 1, order + 1
        heapq.heappush(events, (now + durations.uniform(0.5, 1.5) / EPOCHS, order, worker, got[0], got[1], 1, []))

    try:
        for i in range(PARALLEL):
            start(f"tuner-{i}", 0.0)
        while events:
            now, _, worker, trial, point, epoch, values = heapq.heappop(events)
            values = [*values, curve(point, epoch)]
            epochs += 1
            decision = oracle.report_epoch(worker, trial.trial_id, epoch, values[-1])
            if decision.prune or epoch == EPOCHS:
                pruned += decision.prune
                method.tell(worker, trial, min(values))
                scores.append(min(values))
                start(worker, now)
            else:
                order += 1
                heapq.heappush(events, (now + durations.uniform(0.5, 1.5) / EPOCHS, order, worker, trial, point,
                                        epoch + 1, values))
    finally:
        method.close()
    return {"seed": seed, "best": min(scores), "epochs": epochs, "pruned": pruned}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out")
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore")
    started, result = time.monotonic(), {}
    for name in args.configs.split(","):
        rule, censored = CONFIGS[name]
        runs = []
        for seed in range(args.seeds):
            runs.append(search(rule, censored, args.trials, seed))
            print(f"    {name}: {json.dumps(runs[-1])}", flush=True)
        best = [r["best"] for r in runs]
        q1, med, q3 = statistics.quantiles(best, n=4, method="inclusive")
        result[name] = {"best_median": med, "best_q1": q1, "best_q3": q3,
                        "epochs_median": statistics.median(r["epochs"] for r in runs),
                        "pruned_median": statistics.median(r["pruned"] for r in runs), "runs": runs}
        print(f"  {name:22s} best median {med:8.4f} ({q1:.4f} to {q3:.4f})  epochs median "
              f"{result[name]['epochs_median']:5.0f} of {args.trials * EPOCHS}  pruned median "
              f"{result[name]['pruned_median']}  seeds {len(runs)}", flush=True)
    print(f"{args.trials} trials x {EPOCHS} epochs, {PARALLEL} in flight, {round(time.monotonic() - started)} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
