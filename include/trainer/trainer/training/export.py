"""The export of a fitted candidate: its best epoch, measured on the eval split, as the
SavedModel TF Serving loads (trainer.savedmodel), and the train step's result."""
from __future__ import annotations

from tune_contract.results import TrainResult

from trainer import storage
from trainer.training.fit import Fitted
from trainer.training.resolve import Training


def export(training: Training, fitted: Fitted) -> TrainResult:
    """The result of a candidate that trained (without `seconds`, which the step adds)."""
    from trainer import savedmodel

    args, model, early_stopping = training.args, fitted.model, fitted.early_stopping
    # The model holds the *latest* epoch's weights; the one we ship is the best epoch's.
    early_stopping.restore_best(model)

    metrics = model.evaluate(fitted.eval_ds, verbose=0, return_dict=True)
    model_path = savedmodel.export_saved_model(model, training.spec, storage.join(training.model_dir, "saved_model"))
    return {
        "rank": args.rank,
        "trial_id": args.trial_id,
        "model": args.model,
        "hyperparameters": training.hyperparameters,
        "replicas": fitted.replicas,
        "global_batch_size": fitted.global_batch_size,
        "model_path": model_path,
        "metrics": {name: float(value) for name, value in metrics.items()},
        "objective": {"name": training.objective, "direction": training.direction,
                      "best": early_stopping.state["best"], "best_epoch": early_stopping.state["best_epoch"]},
        "epochs": fitted.epochs,
        "initial_epoch": fitted.initial_epoch,
        "stopped_early": early_stopping.stopped,
        "logs": fitted.logs,
    }
