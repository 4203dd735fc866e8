"""The built-in model's hyperparameters: their defaults and the values it takes.

The model itself is include/models/tune_serve_models/tabular.py, behind the model contract
(trainer.user_model) like any user model, found by its name only (tune_contract.enums.DEFAULT_MODEL:
nothing here imports it); what stays here is what the trainer checks before
building it: a `--hyperparameters` value of the built-in model must be in the limits the
contract sets (tune_contract.search_space.MODEL_LIMITS), whatever search produced it.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from tune_contract.search_space import DEFAULT_HYPERPARAMETERS, MODEL_LIMITS, model_rule, model_value_ok

from trainer.errors import BadInput
from trainer.sdk import FeatureSpec

__all__ = ["DEFAULT_HYPERPARAMETERS", "build_model", "resolve_hyperparameters"]  # the defaults: the contract's

# name -> (type, check, rule shown in the error message), from the limits the contract sets
# (tune_contract.search_space.MODEL_LIMITS), so validate_params refuses a space beyond them too.
_RULES = {
    name: (int if limits[0] else float, lambda v, n=name: model_value_ok(n, v), model_rule(name))
    for name, limits in MODEL_LIMITS.items()
}


def resolve_hyperparameters(values: Mapping[str, Any] | None, field: str = "hyperparameters") -> dict:
    """Defaults overlaid with `values`; unknown keys (e.g. Keras Tuner's `tuner/epochs`) are
    ignored. A known key of the wrong type or range raises BadInput naming it."""
    resolved = dict(DEFAULT_HYPERPARAMETERS)
    for name, (kind, ok, rule) in _RULES.items():
        if name not in (values or {}):
            continue
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
        if kind is int:
            if value != int(value):  # 64.0 is fine (JSON/YAML), 64.5 is not
                raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not ok(value):
            raise BadInput(f"{field}.{name}", f"must be {rule}, got {value!r}")
        resolved[name] = value
    return resolved


def build_model(values: Mapping[str, Any], spec: FeatureSpec, task: str | None = None, strategy=None):
    """The built-in model (tune_serve_models.tabular, through the model contract) for `values`
    checked by `resolve_hyperparameters`, compiled for the task (regression: Adam, loss mse,
    metric mae → `val_mae`); the task reaches the model through the feature spec.

    Deterministic after keras.utils.set_random_seed(seed)."""
    from tune_contract.enums import DEFAULT_MODEL

    from trainer import user_model

    model = user_model.load(DEFAULT_MODEL)
    declared = model.declared_space(spec, task)
    return model.build(model.hyperparameters(declared, resolve_hyperparameters(values)), spec, task, strategy=strategy)
