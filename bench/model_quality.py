"""Benchmark 6: model quality. The tuned model's eval MAE on the default dataset (diamonds)
against the same model with the default hyperparameters (trainer.model.DEFAULT_HYPERPARAMETERS),
both trained by `python -m trainer train` for the same number of epochs on the same prepared
data (no early stopping: `--patience 0`; each ships its best epoch, as the DAG does).

The tuned hyperparameters come from a real search: a bayesian search (chief + 2 tuners on
127.0.0.1, the DAG's default 3 epochs per trial) of 8 trials. Full mode trains each
configuration with two seeds, since one seed's MAE moves by a few dollars. Run with the
trainer venv.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from common import Step, Workdir, emit, free_port, parse_args, r, run_step


def search(workdir: Path, run_root: Path, trials: int, epochs: int) -> dict:
    port = free_port()
    flags = ["--run-root", str(run_root), "--algorithm", "bayesian", "--max-trials", str(trials),
             "--epochs", str(epochs), "--seed", "42"]
    tuners = [Step(f"tuner-{i}", ["tune", *flags, "--tuner-id", f"tuner-{i}", "--oracle-address",
                                  f"127.0.0.1:{port}", "--poll-seconds", "0.5"], workdir) for i in range(2)]
    chief = Step("chief", ["oracle", *flags, "--port", str(port), "--lease-seconds", "600"], workdir)
    try:
        result = chief.result(timeout=3600)
        for t in tuners:
            t.result(timeout=300)
    finally:
        for p in (chief, *tuners):
            p.kill()
    return result


def train(workdir: Path, run_root: Path, rank: int, hyperparameters: str, epochs: int, seed: int) -> dict:
    result = run_step(f"train-{rank}", ["train", "--run-root", str(run_root), "--rank", str(rank),
                                        "--hyperparameters", hyperparameters, "--epochs", str(epochs),
                                        "--patience", "0", "--seed", str(seed)], workdir)
    return {"seed": seed, "mae": r(result["metrics"]["mae"], 2), "hyperparameters": result["hyperparameters"],
            "best_epoch": result["objective"]["best_epoch"], "seconds": result["seconds"]}


def main() -> None:
    import json

    args = parse_args(__doc__)
    rows, trials, tuning_epochs, epochs, seeds = (5000, 4, 2, 4, [42]) if args.quick else (None, 8, 3, 12, [42, 43])
    with Workdir(args.workdir, "quality") as workdir:
        run_root = workdir / "runs" / "bench"
        started = time.monotonic()
        prepared = run_step("prepare", ["prepare", "--run-root", str(run_root), "--seed", "42",
                                        *(["--sample-rows", str(rows)] if rows else [])], workdir)
        oracle = search(workdir, run_root, trials, tuning_epochs)
        best = oracle["trials"][0]
        print(f"  search: {oracle['completed']} trials, best val_mae {best['objective']:.2f} "
              f"({tuning_epochs} epochs) {best['hyperparameters']}", flush=True)
        tuned, default = [], []
        for i, seed in enumerate(seeds):
            tuned.append(train(workdir, run_root, 2 * i, json.dumps(best["hyperparameters"]), epochs, seed))
            default.append(train(workdir, run_root, 2 * i + 1, "{}", epochs, seed))
            print(f"  seed {seed}: tuned MAE {tuned[-1]['mae']}  default MAE {default[-1]['mae']}", flush=True)
    figures = {"tuned_mae": r(statistics.mean(t["mae"] for t in tuned), 2),
               "default_mae": r(statistics.mean(d["mae"] for d in default), 2)}
    figures["tuned_over_default"] = r(figures["tuned_mae"] / figures["default_mae"], 3)
    print(f"\nModel quality (diamonds{f', {rows} rows' if rows else ''}, {prepared['eval_examples']} eval rows, "
          f"{epochs} epochs, seeds {seeds}):")
    print(f"  eval MAE tuned {figures['tuned_mae']}  default {figures['default_mae']}  "
          f"ratio {figures['tuned_over_default']}")
    emit("model_quality", {"quick": args.quick, "train_examples": prepared["train_examples"],
                           "eval_examples": prepared["eval_examples"], "search_trials": trials,
                           "tuning_epochs": tuning_epochs, "training_epochs": epochs, "seeds": seeds,
                           "tuned_hyperparameters": best["hyperparameters"], "search_best_val_mae": r(best["objective"], 2),
                           "search_leaderboard": [{"objective": r(t["objective"], 2), **t["hyperparameters"]}
                                                  for t in oracle["trials"]],
                           "figures": figures, "tuned": tuned, "default": default,
                           "seconds": r(time.monotonic() - started, 1)}, args.out)


if __name__ == "__main__":
    main()
