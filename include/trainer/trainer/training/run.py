"""Step `train` (see trainer.training): resolve, fit, export, and the result."""
from __future__ import annotations

import json
import time

from tune_contract import layout
from tune_contract.results import TrainResult
from tune_contract.steps import TrainArgs

from trainer import storage
from trainer.training.export import export
from trainer.training.fit import Fitted, fit
from trainer.training.resolve import Training, resolve


def run(args: TrainArgs) -> TrainResult:
    training = resolve(args)
    started = time.monotonic()
    fitted = fit(training)
    # A diverged candidate's best epoch is not a model to ship: it fails with the reason, as a
    # result (exit 0: a retry would diverge the same way), and nothing is exported.
    result = diverged(training, fitted) if fitted.diverged else export(training, fitted)
    result["seconds"] = round(time.monotonic() - started, 1)
    storage.write_text(layout.training_result(args.run_root, args.rank), json.dumps(result, indent=2) + "\n")
    return result


def diverged(training: Training, fitted: Fitted) -> TrainResult:
    """The result of a candidate whose training diverged (without `seconds`): no model_path."""
    args = training.args
    return {
        "rank": args.rank, "trial_id": args.trial_id, "hyperparameters": training.hyperparameters,
        "failed": fitted.diverged, "epochs": fitted.epochs, "initial_epoch": fitted.initial_epoch,
        "objective": {"name": args.objective, "direction": args.direction},
        "logs": fitted.logs,
    }
