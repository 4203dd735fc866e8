"""Benchmark 7: classifier quality. The example classifier (include/models/tune_serve_models/
classifier.py, `build(hp, spec, task)`) on two binary tasks made of bundled data: titanic
(survived yes/no from class, age, sex) and diamonds_ideal_cut (is the cut Ideal, from the other
diamond columns, a 10,000-row sample; the table is bundled, the label derived here): eval AUC and accuracy with the hyperparameters a search found against the model's own defaults
(the `default=` of every hp it declares), both trained for the same epochs, each keeping its
best epoch by val_auc (as the DAG ships the best epoch).

The search is Keras Tuner's BayesianOptimization over the space the model declares, run in
this process (objective val_auc, max): the model loader that lets the distributed chief tune a
user model is not part of this benchmark. Data: `python -m trainer prepare`. Full mode trains
each configuration with three seeds. Run with the trainer venv.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from common import REPO, Workdir, emit, parse_args, r, run_step

sys.path.insert(0, str(REPO / "include" / "trainer"))
sys.path.insert(0, str(REPO / "include" / "models"))


def hypermodel(spec, data_dir: str, epochs: int):
    import keras_tuner as kt
    from trainer import data, heads
    from tune_serve_models.classifier import build

    class Classifier(kt.HyperModel):
        def build(self, hp):
            model = build(hp, spec, spec.task)
            return heads.compile_for_task(model, spec.task, hp.get("learning_rate"))

        def fit(self, hp, model, *args, **kwargs):
            batch = hp.get("batch_size")
            return model.fit(data.load_dataset(data_dir, "train", spec, batch, shuffle=True, seed=0),
                             validation_data=data.load_dataset(data_dir, "eval", spec, batch), epochs=epochs,
                             verbose=0, **{k: v for k, v in kwargs.items() if k == "callbacks"})

    return Classifier()


def train(spec, data_dir: str, values: dict, epochs: int, seed: int) -> dict:
    """Fit `values` (missing ones take the model's defaults) and return its best epoch by val_auc."""
    import keras
    import keras_tuner as kt
    from trainer import data, heads
    from tune_serve_models.classifier import build

    keras.utils.set_random_seed(seed)
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    model = heads.compile_for_task(build(hp, spec, spec.task), spec.task, hp.get("learning_rate"))
    batch = hp.get("batch_size")
    history = model.fit(data.load_dataset(data_dir, "train", spec, batch, shuffle=True, seed=seed),
                        validation_data=data.load_dataset(data_dir, "eval", spec, batch), epochs=epochs,
                        verbose=0).history
    best = max(range(epochs), key=lambda e: history["val_auc"][e])
    return {"seed": seed, "auc": r(history["val_auc"][best], 4), "accuracy": r(history["val_accuracy"][best], 4),
            "best_epoch": best + 1, "hyperparameters": hp.values}


def ideal_cut_csv(workdir: Path) -> str:
    """diamonds with `ideal_cut` (yes/no) instead of `cut`: read from the bundled archive."""
    from trainer.prepare import read_source

    frame = read_source("diamonds")
    frame["ideal_cut"] = (frame.pop("cut") == "Ideal").map({True: "yes", False: "no"})
    path = workdir / "diamonds_ideal_cut.csv"
    frame.to_csv(path, index=False)
    return str(path)


def one_dataset(name: str, workdir: Path, quick: bool) -> dict:
    import keras_tuner as kt
    from trainer import data

    trials, tuning_epochs, epochs, seeds = (4, 2, 4, [42]) if quick else (12, 4, 15, [42, 43, 44])
    source = (["--source", "titanic"] if name == "titanic" else
              ["--source", ideal_cut_csv(workdir), "--label", "ideal_cut", "--sample-rows", "10000",
               "--data-roots", str(workdir)])
    run_root = workdir / "runs" / name
    started = time.monotonic()
    prepared = run_step(f"prepare-{name}", ["prepare", "--run-root", str(run_root), *source, "--seed", "42"], workdir)
    data_dir = prepared["data_dir"]
    spec = data.load_feature_spec(data_dir)
    tuner = kt.BayesianOptimization(hypermodel(spec, data_dir, tuning_epochs),
                                    objective=kt.Objective("val_auc", "max"), max_trials=trials, seed=42,
                                    directory=str(workdir / "search"), project_name=name)
    tuner.search()
    best = tuner.get_best_hyperparameters(1)[0].values
    best_score = tuner.oracle.get_best_trials(1)[0].score
    print(f"  {name} search: {trials} trials, best val_auc {best_score:.4f} ({tuning_epochs} epochs) {best}",
          flush=True)
    tuned = [train(spec, data_dir, best, epochs, seed) for seed in seeds]
    default = [train(spec, data_dir, {}, epochs, seed) for seed in seeds]
    for t, d in zip(tuned, default):
        print(f"  seed {t['seed']}: tuned AUC {t['auc']} acc {t['accuracy']}  "
              f"default AUC {d['auc']} acc {d['accuracy']}", flush=True)
    figures = {key: r(statistics.mean(x[metric] for x in rows), 4)
               for key, metric, rows in (("tuned_auc", "auc", tuned), ("default_auc", "auc", default),
                                         ("tuned_accuracy", "accuracy", tuned),
                                         ("default_accuracy", "accuracy", default))}
    print(f"\nClassifier quality ({name}, {prepared['train_examples']} train / {prepared['eval_examples']} eval "
          f"rows, {epochs} epochs, seeds {seeds}):\n  eval AUC tuned {figures['tuned_auc']}  default "
          f"{figures['default_auc']}; accuracy tuned {figures['tuned_accuracy']}  default "
          f"{figures['default_accuracy']}", flush=True)
    return {"train_examples": prepared["train_examples"], "eval_examples": prepared["eval_examples"],
            "label_vocabulary": prepared["label_vocabulary"], "search_trials": trials,
            "tuning_epochs": tuning_epochs, "training_epochs": epochs, "seeds": seeds,
            "tuned_hyperparameters": best, "search_best_val_auc": r(best_score, 4), "figures": figures,
            "tuned": tuned, "default": default, "seconds": r(time.monotonic() - started, 1)}


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    args = parse_args(__doc__)
    with Workdir(args.workdir, "classifier") as workdir:
        results = {name: one_dataset(name, workdir, args.quick) for name in ("titanic", "diamonds_ideal_cut")}
    emit("classifier_quality", {"quick": args.quick, "datasets": results}, args.out)


if __name__ == "__main__":
    main()
