"""Which learning rates of the default search space diverge on the bundled diamonds data.

Trains the built-in model (trainer.model) on the prepared diamonds data for a few epochs at
each learning rate, for the largest and the smallest network of the default space, and
prints per run: the training loss of each epoch, the best val MAE and whether the
divergence rule of the train step (trainer.divergence) fires. Runs in the trainer's venv:

    PYTHONPATH=include/trainer .venv/trainer/bin/python bench/learning_rate_bounds.py RUN_ROOT [--epochs 12]

RUN_ROOT holds a prepared run (`python -m trainer prepare --run-root RUN_ROOT`).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LEARNING_RATES = (1e-3, 1e-2, 0.02, 0.046, 0.1)
NETWORKS = ({"num_layers": 3, "units": 128, "dropout": 0.0, "batch_size": 64},
            {"num_layers": 1, "units": 16, "dropout": 0.0, "batch_size": 64})


def probe(run_root: str, epochs: int, learning_rates, networks, seed: int = 42) -> list[dict]:
    import keras

    from trainer import data, divergence
    from trainer.model import build_model

    data_dir = data.data_dir(run_root)
    spec = data.load_feature_spec(data_dir)
    rows = []
    for net in networks:
        for lr in learning_rates:
            hp = {**net, "learning_rate": lr}
            keras.utils.set_random_seed(seed)
            model = build_model(hp, spec)
            train = data.load_dataset(data_dir, "train", spec, hp["batch_size"], shuffle=True, seed=seed)
            evals = data.load_dataset(data_dir, "eval", spec, hp["batch_size"])
            started = time.monotonic()
            history = model.fit(train, validation_data=evals, epochs=epochs, verbose=0, shuffle=False).history
            losses = [float(v) for v in history["loss"]]
            verdict = divergence.check_history(losses, divergence.baseline_loss(spec))
            val = [v for v in history["val_mae"] if math.isfinite(v)]
            rows.append({**hp, "loss": [round(v) if math.isfinite(v) else str(v) for v in losses],
                         "best_val_mae": round(min(val), 1) if val else None,
                         "last_val_mae": round(float(history["val_mae"][-1]), 1),
                         "diverged": verdict, "seconds": round(time.monotonic() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_root")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--learning-rates", default=",".join(str(v) for v in LEARNING_RATES))
    args = parser.parse_args()
    probe(args.run_root, args.epochs, [float(v) for v in args.learning_rates.split(",")], NETWORKS)


if __name__ == "__main__":
    main()
