"""The train step's flags made concrete against the prepared data and the model.

Everything a candidate's training depends on is decided and checked here, before a file is
written: the trial's hyperparameters (the built-in model's limits, or what a user model
declares), the objective (the task's default) and its direction.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tune_contract import layout, models
from tune_contract.enums import DEFAULT_MODEL, DEFAULT_OBJECTIVES, direction_of, objective_problem
from tune_contract.search_space import user_values
from tune_contract.steps import TrainArgs

from trainer import data
from trainer.errors import BadInput
from trainer.model import resolve_hyperparameters

if TYPE_CHECKING:
    from trainer.featurespec import FeatureSpec
    from trainer.user_model import UserModel


@dataclass(frozen=True)
class Training:
    """One candidate's training, resolved."""

    args: TrainArgs
    data_dir: str
    spec: FeatureSpec
    objective: str
    direction: str
    builder: UserModel
    hp: Any  # Keras Tuner HyperParameters: the trial's values, the model's defaults for the rest
    hyperparameters: dict[str, Any]  # every active value the model is built with

    @property
    def model_dir(self) -> str:  # {run_root}/models/{rank}
        return layout.model_dir(self.args.run_root, self.args.rank)


def resolve(args: TrainArgs) -> Training:
    models.parse(args.model, "--model")
    values = parse_hyperparameters(args.hyperparameters, args.model)
    data_dir = data.data_dir(args.run_root)
    spec = data.load_feature_spec(data_dir)
    # the task's default objective, and the objective's direction, unless given
    objective = args.objective or DEFAULT_OBJECTIVES[spec.task]
    if objective_problem(objective, spec.task):
        raise BadInput("--objective", objective_problem(objective, spec.task))
    direction = args.direction or direction_of(objective)

    from trainer import user_model  # loads Keras

    builder = user_model.load(args.model)
    declared = builder.declared_space(spec)  # checks the model before anything is written
    check_declared(values, declared, args.model)
    # Built with a HyperParameters whose values are the trial's (the model's defaults for the rest).
    hp = builder.hyperparameters(declared, values)
    return Training(args=args, data_dir=data_dir, spec=spec, objective=objective, direction=direction,
                    builder=builder, hp=hp, hyperparameters=dict(hp.values))


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
    if models.is_default(model):
        return resolve_hyperparameters(values, field="--hyperparameters")
    values = user_values(values)
    for name, value in values.items():
        if not isinstance(value, (bool, int, float, str)) or isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"--hyperparameters.{name}",
                           f"must be a finite number, a string or a boolean, got {value!r}")
    return values


def check_declared(values: dict, declared, model: str) -> None:
    names = [hp.name for hp in declared.space]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise BadInput(f"--hyperparameters.{unknown[0]}", f"not a hyperparameter of {model}; it declares: "
                                                          f"{', '.join(names)}")
