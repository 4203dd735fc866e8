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

import math

from tune_contract.enums import ALGORITHMS_NEEDING_DISCRETE
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

from trainer.errors import BadInput
from trainer.featurespec import parse_mapping, read_mapping
from trainer.sdk.space import declare  # the model SDK's: a parameter declared on Keras Tuner's hp

__all__ = ["DEFAULT_SPACE", "MAX_GRID_POINTS", "RESERVED_PREFIX", "TYPES", "Parameter", "SearchSpace", "KerasSpace", "apply_overrides",
           "check", "declare", "declared_names", "default_space", "hyperparameters_violation", "load",
           "parameter_names", "read", "to_hyperparameters", "user_values", "validate"]


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
        declare(hps, p)
    return hps


# -- a user model's space: what it declares, narrowed or fixed by `--search-space` -----------------


def declared_names(hps) -> list[str]:
    return [hp.name for hp in hps.space]


def apply_overrides(declared, overrides: SearchSpace | None, model: str, algorithm: str,
                    field: str = "--search-space"):
    """The space a user model is searched over: the hyperparameters it declares (conditions
    kept), each one `overrides` names replaced by that definition (a choice of one value
    fixes it). A name the model does not declare is refused with the declared names: a typo
    would otherwise be tuned and ignored."""
    import keras_tuner as kt

    names = declared_names(declared)
    by_name = {p.name: p for p in (overrides.parameters if overrides else ())}
    unknown = [name for name in by_name if name not in names]
    if unknown:
        raise BadInput(f"{field}.{unknown[0]}", f"not a hyperparameter of {model}; it declares: {', '.join(names)}")
    for hp in declared.space:
        if hp.name in by_name:
            problem = _widens(hp, by_name[hp.name])
            if problem:
                raise BadInput(f"{field}.{hp.name}", problem)
    space = kt.HyperParameters()
    for hp in declared.space:
        if hp.name in by_name:
            with _conditions(space, hp.conditions):  # the override keeps the declared condition
                declare(space, by_name[hp.name])
        else:
            space.merge([hp])  # a copy, with its own conditions
    if algorithm in ALGORITHMS_NEEDING_DISCRETE:
        continuous = [hp for hp in space.space if isinstance(hp, kt.engine.hyperparameters.Float) and not hp.step]
        if continuous:
            raise BadInput(f"{field}.{continuous[0].name}",
                           f"the {algorithm} algorithm needs every parameter discrete; {model} declares "
                           f"{continuous[0].name} as a continuous float: fix it or give it a step here")
    return space


def _widens(declared, override: Parameter) -> str | None:
    """Why `override` is not inside the declared hyperparameter, or None. The run's conf may
    narrow or fix what the model's author declared, never widen it: the declared bounds are the
    only ones a user model's hyperparameters have (a conf could otherwise ask for a layer of a
    million units on every tuner pod). A range is inside when both ends are values the declared
    one takes; a choice when each of its values is."""
    kind = type(declared).__name__
    if override.type != "choice" and kind in ("Choice", "Fixed", "Boolean"):
        values = declared.get_config().get("values") or [declared.get_config().get("value")]
        shown = ", ".join(map(str, [False, True] if kind == "Boolean" else values))
        return (f"{declared.name} is declared as a choice of {shown}: override it with a choice of "
                f"{'one of them' if kind != 'Choice' else 'some of them'}")
    single = _kt_space_of(declared)
    points = override.values if override.type == "choice" else (override.min, override.max)
    for value in points:
        problem = hyperparameters_violation(single, {declared.name: value})
        if problem:
            return f"{problem}: an override may only narrow or fix what the model declares"
    return None


def _kt_space_of(hp):
    """A Keras Tuner space holding only `hp` (its conditions dropped: checked for its values)."""
    import keras_tuner as kt

    config = hp.get_config()
    config["conditions"] = []
    single = kt.HyperParameters()
    single.merge([type(hp).from_config(config)])
    return single


def _conditions(hps, conditions):
    """Nested `conditional_scope`s re-creating `conditions` (Keras Tuner's Parent conditions)."""
    import contextlib

    stack = contextlib.ExitStack()
    for condition in conditions:
        stack.enter_context(hps.conditional_scope(condition.name, condition.values))
    return stack


def hyperparameters_violation(hps, values) -> str | None:
    """Why `values` (a trial's, without Keras Tuner's own entries) is not a point of the
    Keras Tuner space `hps`, or None: an unknown name, or a value its parameter cannot take."""
    known = {hp.name: hp for hp in hps.space}
    for name, value in values.items():
        hp = known.get(name)
        if hp is None:
            return f"{name} is not a parameter of the search space"
        config = hp.get_config()
        kind = type(hp).__name__
        if kind in ("Choice", "Fixed"):
            allowed = config.get("values") or [config.get("value")]
            if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
                return f"{name}={value!r} is not one of its values"
        elif kind == "Boolean":
            if not isinstance(value, bool):
                return f"{name}={value!r} is not a boolean"
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not config["min_value"] <= value <= config["max_value"]:
            return f"{name}={value!r} is outside [{config['min_value']}, {config['max_value']}]"
    return None


def keras_kinds(hps) -> dict[str, str]:
    """{name: kind} of a Keras Tuner space, in the words of tune_contract.warm_start (a Boolean
    and a Fixed value are choices, as the declarative space writes them)."""
    from tune_contract import warm_start as rule

    kinds = {}
    for hp in hps.space:
        config, kind = hp.get_config(), type(hp).__name__
        if kind == "Boolean":
            kinds[hp.name] = rule.choice_kind(True)
        elif kind == "Fixed":
            kinds[hp.name] = rule.choice_kind(config.get("value"))
        elif kind == "Choice":
            kinds[hp.name] = rule.choice_kind((config.get("values") or [None])[0])
        else:
            kinds[hp.name] = rule.numeric_kind(kind.lower(), config.get("sampling") == "log")
    return kinds


class KerasSpace:
    """A Keras Tuner space with the `violation` check of the declarative SearchSpace."""

    def __init__(self, hps):
        self.hps = hps

    def violation(self, values) -> str | None:
        return hyperparameters_violation(self.hps, values)
