"""Step `train`: fully train one of the top-N configurations and export it for serving.

Writes `{run_root}/models/{rank}/`:
    checkpoints/   resumable state (see trainer.checkpointing): a restarted pod continues
                   from its last finished epoch
    logs/          TensorBoard, and history.csv (Keras CSVLogger: the metrics of every epoch)
    saved_model/   the export TF Serving loads (see trainer.savedmodel), swapped in whole
    training.json  this step's result, for people browsing the bucket
"""
from __future__ import annotations

import json
import math
import time

from tune_contract import layout, models
from tune_contract.enums import DEFAULT_MODEL, DEFAULT_OBJECTIVES, direction_of, objective_problem
from tune_contract.search_space import user_values
from tune_contract.steps import TrainArgs

from trainer import data, storage
from trainer.errors import BadInput
from trainer.model import resolve_hyperparameters

def model_dir(run_root: str, rank: int) -> str:
    return layout.model_dir(run_root, rank)


def parse_hyperparameters(text: str, model: str = DEFAULT_MODEL) -> dict:
    """The `--hyperparameters` JSON object. The built-in model's are checked against its
    limits (missing keys take its defaults); a user model's are the trial's values, checked
    against what it declares once it is built (`check_declared`). Keras Tuner's own
    `tuner/...` entries are dropped."""
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput("--hyperparameters", f"not valid JSON: {exc}") from None
    if not isinstance(values, dict):
        raise BadInput("--hyperparameters", f"must be a JSON object, got {type(values).__name__}")
    if model == DEFAULT_MODEL:
        return resolve_hyperparameters(values, field="--hyperparameters")
    values = user_values(values)
    for name, value in values.items():
        if not isinstance(value, (bool, int, float, str)) or isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"--hyperparameters.{name}", f"must be a finite number, a string or a boolean, got {value!r}")
    return values


def check_declared(values: dict, declared, model: str) -> None:
    names = [hp.name for hp in declared.space]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BadInput(f"--hyperparameters.{unknown[0]}", f"not a hyperparameter of {model}; it declares: "
                                                          f"{', '.join(names)}")


def run(args: TrainArgs) -> dict:
    models.parse(args.model, "--model")
    hyperparameters = parse_hyperparameters(args.hyperparameters, args.model)
    for flag, value, minimum in (("--rank", args.rank, 0), ("--epochs", args.epochs, 1), ("--patience", args.patience, 0)):
        if value < minimum:
            raise BadInput(flag, f"must be >= {minimum}, got {value}")
    data_dir = data.data_dir(args.run_root)
    spec = data.load_feature_spec(data_dir)
    # the task's default objective, and the objective's direction, unless given
    objective = args.objective or DEFAULT_OBJECTIVES[spec.task]
    if objective_problem(objective, spec.task):
        raise BadInput("--objective", objective_problem(objective, spec.task))
    direction = args.direction or direction_of(objective)

    import warnings

    import keras

    # A TFRecord pipeline has no known length, so Keras learns the epoch's end by running
    # out of data and warns about it every epoch; that is expected here.
    warnings.filterwarnings("ignore", message="Your input ran out of data")

    from trainer import checkpointing, distribution, divergence, savedmodel, user_model

    model_builder = user_model.load(args.model)
    declared = model_builder.declared_space(spec)  # checks the model before anything is written
    check_declared(hyperparameters, declared, args.model)
    # Built with a HyperParameters whose values are the trial's (the model's defaults for the rest).
    hp = model_builder.hyperparameters(declared, hyperparameters)
    hyperparameters = dict(hp.values)

    started = time.monotonic()
    out = model_dir(args.run_root, args.rank)
    checkpoints, logs = storage.join(out, "checkpoints"), storage.join(out, "logs")
    config_id = checkpointing.fingerprint(model=args.model, hyperparameters=hyperparameters, seed=args.seed,
                                          objective=objective, direction=direction, feature_spec=spec.to_dict())
    checkpointing.reset_if_changed(checkpoints, config_id, logs)

    keras.utils.set_random_seed(args.seed)
    # Over every GPU of the pod (MirroredStrategy) when it has more than one: the model is
    # built and compiled in the strategy's scope, and the dataset yields the global batch.
    strategy = distribution.strategy()
    model = model_builder.build(hp, spec, strategy=strategy)
    batch_size = distribution.global_batch_size(user_model.batch_size(hp), strategy)
    train_ds = data.load_dataset(data_dir, "train", spec, batch_size, shuffle=True, seed=args.seed)
    eval_ds = data.load_dataset(data_dir, "eval", spec, batch_size)
    distribution.build_for_fit(model, eval_ds, strategy)

    early_stopping = checkpointing.ResumableEarlyStopping(checkpoints, objective, direction, args.patience)
    diverging = divergence.guard(checkpoints, divergence.baseline_loss(spec))
    if not early_stopping.stopped and not diverging.reason:  # a stop decided before a restart stands
        # shuffle=False: the dataset shuffles itself (seeded); Keras cannot shuffle a tf.data pipeline.
        model.fit(train_ds, validation_data=eval_ds, epochs=args.epochs, shuffle=False, verbose=2, callbacks=[
            diverging,  # stops the fit (and keeps the reason) once the loss diverges
            early_stopping,
            checkpointing.backup_and_restore(checkpoints),
            keras.callbacks.TensorBoard(log_dir=logs),
            # one row per epoch for the run view's learning curves (the Airflow side reads no
            # TensorBoard events); a resumed pod appends, the view keeps an epoch's last row
            keras.callbacks.CSVLogger(layout.history(args.run_root, args.rank), append=True),
        ])
    epochs_completed = early_stopping.state["epochs_completed"]
    initial_epoch = early_stopping.first_epoch if early_stopping.first_epoch is not None else epochs_completed
    if diverging.reason:
        # Its best epoch is not a model to ship: the candidate fails with the reason, as a
        # result (exit 0: a retry would diverge the same way), and nothing is exported.
        return _write(args, {
            "rank": args.rank, "trial_id": args.trial_id, "hyperparameters": hyperparameters,
            "failed": diverging.reason, "epochs": epochs_completed, "initial_epoch": initial_epoch,
            "objective": {"name": args.objective, "direction": args.direction},
            "logs": logs, "seconds": round(time.monotonic() - started, 1),
        })
    # The model holds the *latest* epoch's weights; the one we ship is the best epoch's.
    early_stopping.restore_best(model)

    metrics = model.evaluate(eval_ds, verbose=0, return_dict=True)
    model_path = savedmodel.export_saved_model(model, spec, storage.join(out, "saved_model"))
    result = {
        "rank": args.rank,
        "trial_id": args.trial_id,
        "model": args.model,
        "hyperparameters": hyperparameters,
        "replicas": strategy.num_replicas_in_sync,
        "global_batch_size": batch_size,
        "model_path": model_path,
        "metrics": {name: float(value) for name, value in metrics.items()},
        "objective": {"name": objective, "direction": direction,
                      "best": early_stopping.state["best"], "best_epoch": early_stopping.state["best_epoch"]},
        "epochs": epochs_completed,
        "initial_epoch": initial_epoch,
        "stopped_early": early_stopping.stopped,
        "logs": logs,
        "seconds": round(time.monotonic() - started, 1),
    }
    return _write(args, result)


def _write(args: TrainArgs, result: dict) -> dict:
    storage.write_text(layout.training_result(args.run_root, args.rank), json.dumps(result, indent=2) + "\n")
    return result
