"""The search space of a run: read from a flag, and turned into Keras Tuner hyperparameters.

The schema and the rules (`Parameter`, `SearchSpace`, `validate`, `check`) are the contract's
(`tune_contract.search_space`), the same ones `validate_params` runs on the Airflow side;
this module adds what needs the trainer's environment: YAML and URIs, and Keras Tuner.

A stepped float becomes an ordered Keras Tuner `Choice` of its exact grid points:
`kt.HyperParameters.Float(0, 0.5, step=0.1)` enumerates 0.0, 0.1, 0.2, 0.30000000000000004,
0.4 (float floor division drops the maximum), which would make a grid search miss 0.5 and
hand training unrounded values.
"""
from __future__ import annotations

from tune_contract.search_space import (
    DEFAULT_SPACE,
    MAX_GRID_POINTS,
    RESERVED_PREFIX,
    TYPES,
    Parameter,
    SearchSpace,
    check,
    default_space,
    parameter_names,
    user_values,
    validate,
)

from trainer.featurespec import parse_mapping, read_mapping

__all__ = ["DEFAULT_SPACE", "MAX_GRID_POINTS", "RESERVED_PREFIX", "TYPES", "Parameter", "SearchSpace", "check",
           "default_space", "load", "parameter_names", "read", "to_hyperparameters", "user_values", "validate"]


def read(value: str | None, field: str = "--search-space"):
    """The parsed `--search-space`: None when not given; inline JSON/YAML (starts with '[' or
    '{', or spans lines) → parsed; anything else is the URI of a JSON/YAML file."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text[0] in "[{" or "\n" in text:
        return parse_mapping(text, field)
    return read_mapping(text, field_name=field)


def load(value: str | None, default: list[dict] | None = None, field: str = "--search-space") -> SearchSpace:
    """Parse and validate `--search-space`; None → `default` (the tabular model's space)."""
    data = read(value, field)
    return validate(list(DEFAULT_SPACE) if default is None else default, field) if data is None else validate(data, field)


# -- Keras Tuner -------------------------------------------------------------------------------


def to_hyperparameters(space: SearchSpace):
    """The `keras_tuner.HyperParameters` the oracle samples from (tune_new_entries=False)."""
    import keras_tuner as kt  # on use: validating a space must not load TensorFlow

    hps = kt.HyperParameters()
    for p in space.parameters:
        sampling = "log" if p.log else "linear"
        if p.type == "choice":
            hps.Choice(p.name, list(p.values))
        elif p.step is not None and (p.type == "float" or p.log):
            hps.Choice(p.name, list(p.grid()), ordered=True)  # exact, rounded grid points
        elif p.type == "int":
            hps.Int(p.name, p.min, p.max, step=p.step, sampling=sampling)
        else:
            hps.Float(p.name, p.min, p.max, sampling=sampling)
    return hps
