"""Benchmark: early stopping and warm start on real tuning of the diamonds model.

Each search is the chief's own oracle (`trainer.tuning.distributed.oracles.make_oracle`: leases, the
pruning module, warm-start seeding) driven in this process by one tuner loop that fits the
built-in Keras model on a seeded sample of the bundled diamonds data and reports every epoch to
the oracle exactly as the heartbeat does (`report_epoch`), stopping a trial the oracle prunes.
In-process and one trial at a time because on this shared 2-core machine three TensorFlow
processes per search (chief + 2 tuners) cost ~2 minutes per search in start-up and contention
alone (measured: 123 s for 6 trials x 3 epochs); the pruned-trial path through the real chief
and two tuners is covered by tests/trainer/test_pruning.py. All methods get the same number of
trials and epochs per trial:

- early stopping: Keras Tuner random and bayesian with early stopping off (the anchors), and
  bayesian with asha and with median; ours, `gp` (the default algorithm) and `tpe`, off and with
  median (their `auto`). Per search: the best val MAE among its trials (a pruned
  trial counts with its best epoch) and the epochs it spent (the sum over its trials of the epochs
  each ran). Goal (issue 12): the same or better best MAE with >= 30% fewer epochs.
- warm start: bayesian, tpe and gp, early stopping off, 8 trials, seeded with the completed trials
  of the cold search (same algorithm) of the previous seed (another run of the same model and space, as a
  scheduled retune would find it), against the best of the first 8 trials of the cold search of
  the same seed.

Seeds are far apart (Keras Tuner's random draws advance the seed by one per value).
Run with the trainer venv: `make bench BENCH=diamonds` (or `BENCH="--quick diamonds"`).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from common import REPO, Workdir, emit, parse_args, r, run_step

SAMPLE_ROWS = 2000
ES_CONFIGS = (("random", "off"), ("bayesian", "off"), ("bayesian", "asha"), ("bayesian", "median"),
              ("tpe", "off"), ("tpe", "median"), ("gp", "off"), ("gp", "median"))
WARM_ALGORITHMS = ("bayesian", "tpe", "gp")
# DIAMONDS_ALGORITHMS=gp,tpe runs only those algorithms' searches (a re-run after one changed)
ONLY = tuple(a for a in os.environ.get("DIAMONDS_ALGORITHMS", "").split(",") if a)
TUNER = "bench-tuner"


def search(workdir: Path, data: Path, name: str, algorithm: str, early_stopping: str, seed: int, trials: int,
           epochs: int, warm_from: Path | None = None) -> dict:
    import keras
    from tune_contract.early_stopping import resolve

    from trainer import data as data_lib
    from trainer.model import build_model, resolve_hyperparameters
    from trainer.tuning import search_space as ss
    from trainer.tuning import warm_start
    from trainer.tuning.oracle_step import build_result
    from trainer.tuning.distributed.oracles import make_oracle
    from trainer.tuning.settings import Settings

    run_root = workdir / name / "runs" / name
    run_root.mkdir(parents=True)
    shutil.copytree(data, run_root / "data")
    rule, why = resolve(early_stopping, algorithm)
    settings = Settings(run_root=str(run_root), algorithm=algorithm, space=ss.check(None, algorithm),
                        objective="val_mae", direction="min", max_trials=trials, executions_per_trial=1,
                        epochs=epochs, seed=seed, pruning=rule, pruning_why=why)
    oracle = make_oracle(settings, lease_seconds=3600.0)
    oracle._set_project_dir(str(run_root), "tuning")
    oracle.save()
    (run_root / "tuning" / "search.json").write_text(json.dumps(settings.identity()))
    if warm_from:
        warm_start.seed(oracle, settings, str(warm_from))
    spec = data_lib.load_feature_spec(str(run_root / "data"))
    started = time.monotonic()

    class Report(keras.callbacks.Callback):
        def __init__(self, trial_id):
            super().__init__()
            self.trial_id, self.pruned = trial_id, None

        def on_epoch_end(self, epoch, logs=None):
            decision = oracle.report_epoch(TUNER, self.trial_id, epoch + 1, float(logs["val_mae"]))
            if decision.prune:
                self.pruned, self.model.stop_training = decision.reason, True

    while True:
        trial = oracle.create_trial(TUNER)
        if trial.status != "RUNNING":
            break
        values = ss.user_values(trial.hyperparameters.values)
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed + int(trial.trial_id))
        model = build_model(values, spec)
        batch = resolve_hyperparameters(values)["batch_size"]
        report = Report(trial.trial_id)
        history = model.fit(data_lib.load_dataset(str(run_root / "data"), "train", spec, batch, shuffle=True, seed=seed),
                            validation_data=data_lib.load_dataset(str(run_root / "data"), "eval", spec, batch),
                            epochs=epochs, verbose=0, callbacks=[report]).history["val_mae"]
        finite = [(v, i) for i, v in enumerate(history) if math.isfinite(v)]
        best, step = min(finite) if finite else (float("nan"), 0)
        oracle.update_trial_from(TUNER, trial.trial_id, {"val_mae": best}, step=step)
        ended = oracle.trials[trial.trial_id]
        ended.status = "COMPLETED" if finite else "FAILED"
        oracle.end_trial_from(TUNER, ended)
        (run_root / "tuning" / f"trial_{trial.trial_id}" / f"outcome-{TUNER}.json").write_text(
            json.dumps({"epochs": len(history), **({"pruned": report.pruned} if report.pruned else {})}))
        oracle.finished_by[trial.trial_id] = TUNER
    result = build_result(oracle, settings)
    (run_root / "tuning" / "oracle_result.json").write_text(json.dumps(result))
    own = sorted(result["trials"], key=lambda t: int(t["trial_id"]))
    return {"name": name, "seed": seed, "run_root": str(run_root),
            "best": r(min(t["objective"] for t in result["trials"]), 2),
            "best_first_8": r(min(t["objective"] for t in own[:8]), 2),
            "epochs": sum(int(t["epochs"] or 0) for t in result["trials"]),
            "trials": result["completed"], "pruned": sum(1 for t in result["trials"] if t.get("pruned")),
            "warm_start": (result.get("warm_start") or {}).get("note"), "seconds": r(time.monotonic() - started, 1)}


def main() -> None:
    args = parse_args(__doc__)
    sys.path.insert(0, str(REPO / "include" / "trainer"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    seeds = [1, 1001] if args.quick else [1 + 1000 * i for i in range(5)]
    trials, epochs = (6, 3) if args.quick else (8, 6)
    runs: dict[str, list[dict]] = {}
    with Workdir(args.workdir, "diamonds") as workdir:
        data_root = workdir / "prepared"
        run_step("prepare", ["prepare", "--run-root", str(data_root), "--sample-rows", str(SAMPLE_ROWS),
                             "--seed", "42"], workdir)
        data = data_root / "data"
        for algorithm, rule in ES_CONFIGS:
            if ONLY and algorithm not in ONLY:
                continue
            key = f"{algorithm}+{rule}"
            runs[key] = []
            for seed in seeds:
                run = search(workdir, data, f"{algorithm}-{rule}-{seed}", algorithm, rule, seed, trials, epochs)
                runs[key].append(run)
                print(f"  {key:16s} seed {seed}: best val_mae {run['best']:8.1f}  epochs {run['epochs']:3d}  "
                      f"pruned {run['pruned']}  {run['seconds']}s", flush=True)
        for algorithm in WARM_ALGORITHMS:
            if ONLY and algorithm not in ONLY:
                continue
            cold, warm = runs[f"{algorithm}+off"], runs.setdefault(f"{algorithm}+warm", [])
            for i, seed in enumerate(seeds):
                previous = Path(cold[i - 1]["run_root"])  # the cold search of the previous seed
                run = search(workdir, data, f"{algorithm}-warm-{seed}", algorithm, "off", seed, 8, epochs,
                             warm_from=previous)
                warm.append(run)
                print(f"  {algorithm}+warm seed {seed}: best of 8 {run['best']:8.1f} vs cold "
                      f"{cold[i]['best_first_8']:8.1f}  ({run['warm_start']})", flush=True)

    def med(key: str, field: str) -> float:
        return statistics.median(x[field] for x in runs[key])

    figures = {key: {"median_best_val_mae": r(med(key, "best"), 1), "median_epochs": med(key, "epochs"),
                     # the same algorithm with early stopping off: what early stopping saves
                     "epochs_vs_off": r(med(key, "epochs") / med(key.split("+")[0] + "+off", "epochs"), 3),
                     "median_pruned": med(key, "pruned"), "seeds": len(runs[key])}
               for key in runs if not key.endswith("+warm")}
    figures["warm_start"] = {algorithm: {"median_best_of_8_warm": r(med(f"{algorithm}+warm", "best"), 1),
                                         "median_best_of_8_cold": r(med(f"{algorithm}+off", "best_first_8"), 1),
                                         "seeds": len(runs[f"{algorithm}+warm"])}
                             for algorithm in WARM_ALGORITHMS if f"{algorithm}+warm" in runs}
    print(f"\nDiamonds, {SAMPLE_ROWS} rows, {trials} trials x {epochs} epochs, one trial at a time, {len(seeds)} seeds "
          "(medians)")
    print(f"  {'method':16s} {'best val_mae':>12s} {'epochs':>7s} {'vs off':>12s} {'pruned':>7s}")
    for key, f in figures.items():
        if key != "warm_start":
            print(f"  {key:16s} {f['median_best_val_mae']:12.1f} {f['median_epochs']:7.1f} "
                  f"{f['epochs_vs_off']:12.3f} {f['median_pruned']:7.1f}")
    for algorithm, w in figures["warm_start"].items():
        print(f"  warm start ({algorithm}), best after 8 trials: warm {w['median_best_of_8_warm']} "
              f"vs cold {w['median_best_of_8_cold']}")
    emit("diamonds_epochs", {"quick": args.quick, "sample_rows": SAMPLE_ROWS, "trials": trials,
                             "epochs_per_trial": epochs, "in_process": True, "figures": figures, "runs": runs},
         args.out)


if __name__ == "__main__":
    main()
