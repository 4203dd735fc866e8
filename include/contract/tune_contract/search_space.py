"""The search space as data (Katib-like): its schema and the one validator both sides run.

A space is a list of parameters (a mapping `{"parameters": [...]}` is accepted too)::

    - {name: num_layers,    type: int,    min: 1,    max: 3}
    - {name: units,         type: int,    min: 16,   max: 128, step: 16}
    - {name: dropout,       type: float,  min: 0.0,  max: 0.5, step: 0.1}
    - {name: learning_rate, type: float,  min: 1e-4, max: 1e-2, log: true}
    - {name: batch_size,    type: choice, values: [64, 128, 256]}

`min` and `max` are inclusive. With `log: true` values are sampled on a log scale
(`min` > 0) and a `step`, if any, is a multiplier (> 1): `{min: 1e-4, max: 1e-1, step: 10,
log: true}` is 1e-4, 1e-3, 1e-2, 1e-1.

`validate_params` (Airflow) and the trainer's `oracle`/`tune` steps both call `check()`, so
a space the form accepts is a space the chief accepts. For a user model (the `model` run
parameter) the space is the hyperparameters the model declares, and this list narrows or
fixes some of them (a choice of one value fixes it); `prepare` refuses a name the model does
not declare. Parsing YAML or reading a URI is the
trainer's business; this module takes the parsed data.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tune_contract import models
from tune_contract.enums import ALGORITHMS_NEEDING_DISCRETE
from tune_contract.errors import BadInput

TYPES: Final = ("int", "float", "choice")
# Keras Tuner writes its own bookkeeping values (Hyperband's epochs, brackets…) under this prefix.
RESERVED_PREFIX: Final = "tuner/"
MAX_GRID_POINTS: Final = 1000  # per parameter: a smaller step is almost certainly a typo

_KEYS = {
    "int": ("name", "type", "min", "max", "step", "log"),
    "float": ("name", "type", "min", "max", "step", "log"),
    "choice": ("name", "type", "values"),
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")

# The tabular model's hyperparameters and the space searched when none is given.
DEFAULT_SPACE: Final = (
    {"name": "num_layers", "type": "int", "min": 1, "max": 3},
    {"name": "units", "type": "int", "min": 16, "max": 128, "step": 16},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
    # at most 1e-2: on the bundled diamonds data 0.046 and 0.1 kill the 3x128 network (loss back at
    # the mean predictor's, val MAE ~3,000) and 0.02 already spikes; 1e-3 and 1e-2 train
    # (bench/learning_rate_bounds.py, bench/RESULTS.md)
    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 1e-2, "log": True},
    {"name": "batch_size", "type": "choice", "values": [64, 128, 256]},
)
MODEL_HYPERPARAMETERS: Final[tuple[str, ...]] = tuple(str(p["name"]) for p in DEFAULT_SPACE)
# The tabular model's values when a trial or a `train --hyperparameters` leaves one out (and the
# defaults it declares); one per name of DEFAULT_SPACE, in its order.
DEFAULT_HYPERPARAMETERS: Final[dict[str, float]] = {
    "num_layers": 2, "units": 64, "dropout": 0.1, "learning_rate": 1e-3, "batch_size": 128,
}

# What each model hyperparameter may be: (integer, low, high, low included, high included).
# Bounded above as well: a search space or a hyperparameter set is data from a run's conf, and
# a million units or layers would only exhaust the GPU (or the node) before training anything.
MODEL_LIMITS: Final[dict[str, tuple[bool, float, float, bool, bool]]] = {
    "num_layers": (True, 1, 16, True, True),
    "units": (True, 1, 4096, True, True),
    "dropout": (False, 0.0, 1.0, True, False),
    "learning_rate": (False, 0.0, 1.0, False, True),
    "batch_size": (True, 1, 65536, True, True),
}


def model_rule(name: str) -> str:
    """The rule of a model hyperparameter as the error messages state it."""
    integer, low, high, low_in, high_in = MODEL_LIMITS[name]
    kind = "an integer" if integer else "a number"
    return f"{kind} in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def model_value_ok(name: str, value: float) -> bool:
    _, low, high, low_in, high_in = MODEL_LIMITS[name]
    return (low <= value if low_in else low < value) and (value <= high if high_in else value < high)

# Each benchmark function's parameters (tune_contract.enums.BENCHMARK_FUNCTIONS).
BENCHMARK_SPACES: Final = {
    "branin": (
        {"name": "x1", "type": "float", "min": -5.0, "max": 10.0},
        {"name": "x2", "type": "float", "min": 0.0, "max": 15.0},
    ),
    "sleep": ({"name": "x", "type": "float", "min": 0.0, "max": 1.0},),
    "hartmann6": tuple({"name": f"x{i}", "type": "float", "min": 0.0, "max": 1.0} for i in range(1, 7)),
}

# The JSON schema of one parameter, for forms (Airflow's Param); `validate` is the full rule.
PARAMETER_JSON_SCHEMA: Final = {
    "type": "object",
    "required": ["name", "type"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "type": {"type": "string", "enum": list(TYPES)},
        "min": {"type": "number"},
        "max": {"type": "number"},
        "step": {"type": "number", "exclusiveMinimum": 0},
        "log": {"type": "boolean"},
        "values": {"type": "array", "minItems": 1, "items": {"type": ["number", "string", "boolean"]}},
    },
}


def default_space(function: str | None = None) -> list[dict[str, Any]]:
    """The space searched when none is given: the model's, or a benchmark function's."""
    return [dict(p) for p in (BENCHMARK_SPACES[function] if function else DEFAULT_SPACE)]


def parameter_names(function: str | None = None) -> tuple[str, ...]:
    """The names a space may use: the model's hyperparameters, or a benchmark function's."""
    return tuple(str(p["name"]) for p in BENCHMARK_SPACES[function]) if function else MODEL_HYPERPARAMETERS


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    step: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()

    @property
    def discrete(self) -> bool:
        """Enumerable without guessing: a choice, a linear int, or anything with a step."""
        return self.type == "choice" or self.step is not None or (self.type == "int" and not self.log)

    def grid(self) -> tuple[Any, ...]:
        """Every value of a discrete parameter, in order (the values of a choice)."""
        if self.type == "choice":
            return self.values
        return _grid_points(self)

    def to_dict(self) -> dict[str, Any]:
        if self.type == "choice":
            return {"name": self.name, "type": "choice", "values": list(self.values)}
        d: dict[str, Any] = {"name": self.name, "type": self.type, "min": self.min, "max": self.max}
        if self.step is not None:
            d["step"] = self.step
        if self.log:
            d["log"] = True
        return d


@dataclass(frozen=True)
class SearchSpace:
    parameters: tuple[Parameter, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def to_list(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.parameters]

    def violation(self, values: Mapping[str, Any]) -> str | None:
        """Why `values` is not a point of this space (a name missing or unknown, a value out
        of range, off its grid or not a choice), or None if it is one."""
        unknown = sorted(set(values) - set(self.names))
        if unknown:
            return f"{unknown[0]} is not a parameter of the search space"
        for p in self.parameters:
            if p.name not in values:
                return f"{p.name} is missing"
            value = values[p.name]
            if p.type == "choice" or p.step is not None and (p.type == "float" or p.log):
                if value not in p.grid():
                    return f"{p.name}={value!r} is not one of its values"
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or p.min is None or p.max is None or not p.min <= value <= p.max:
                return f"{p.name}={value!r} is outside [{p.min}, {p.max}]"
            if p.type == "int" and (value != int(value) or (p.step and (value - p.min) % p.step)):
                return f"{p.name}={value!r} is not on its grid (min {p.min}, step {p.step or 1})"
        return None

    def require_discrete(self, algorithm: str, field: str = "--search-space") -> None:
        continuous = [p for p in self.parameters if not p.discrete]
        if continuous:
            p = continuous[0]
            how = ("give it a step (a multiplier > 1 with log)" if p.type == "float" or p.log
                   else "give it a step")
            raise BadInput(
                f"{field}.{p.name}",
                f"the {algorithm} algorithm needs every parameter discrete (choice, or int/float with step); "
                f"{p.name} is a continuous {p.type}: {how}, make it a choice, "
                "or use random/bayesian/hyperband",
            )

    def require_names(self, allowed: Iterable[str], what: str, field: str = "--search-space") -> None:
        """Every parameter must be one `what` understands: a typo would otherwise be tuned and ignored."""
        allowed = list(allowed)
        for p in self.parameters:
            if p.name not in allowed:
                raise BadInput(f"{field}.{p.name}",
                               f"not a hyperparameter of {what}; allowed: {', '.join(allowed)}")


def check(data: Any, algorithm: str, function: str | None = None, field: str = "--search-space",
          model: str | None = None) -> SearchSpace | None:
    """The whole rule for a run's space: well-formed, names the tuned thing takes, and
    discrete for an algorithm that enumerates it. `data` None means the default space.

    For a user model (`model` other than the built-in DEFAULT_MODEL) the space is what the
    model declares and `data` only narrows or fixes some of its parameters: only its form is
    checked here (None stays None); its names are checked against the model's declarations
    where the model can be imported, in the trainer (trainer.user_model, at `prepare`)."""
    if function is None and not models.is_default(model):
        if data is None:
            return None
        overrides = validate(data, field)
        if algorithm in ALGORITHMS_NEEDING_DISCRETE:
            overrides.require_discrete(algorithm, field)
        return overrides
    space = validate(default_space(function) if data is None else data, field)
    space.require_names(parameter_names(function),
                        f"the {function} function" if function else "the tabular model", field)
    if function is None:  # the model's own limits, checked here so validate_params refuses them too
        for p in space.parameters:
            for value in (p.values if p.type == "choice" else (p.min, p.max)):
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                      and model_value_ok(p.name, value)
                      and (not MODEL_LIMITS[p.name][0] or value == int(value)))
                if not ok:
                    raise BadInput(f"{field}.{p.name}", f"{value!r} is outside what the model takes: "
                                                        f"{model_rule(p.name)}")
    if algorithm in ALGORITHMS_NEEDING_DISCRETE:
        space.require_discrete(algorithm, field)
    return space


def validate(data: Any, field: str = "--search-space") -> SearchSpace:
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"parameters"})
        if unknown:
            raise BadInput(f"{field}.{unknown[0]}", "unknown key; allowed: parameters")
        data = data.get("parameters")
    if not isinstance(data, (list, tuple)) or not data:
        raise BadInput(field, "must be a non-empty list of parameters ({name, type, ...})")
    params, seen = [], set()
    for index, entry in enumerate(data):
        param = _parameter(entry, f"{field}[{index}]", field)
        if param.name in seen:
            raise BadInput(f"{field}.{param.name}", "defined twice; parameter names must be unique")
        seen.add(param.name)
        params.append(param)
    return SearchSpace(tuple(params))


def user_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's values without Keras Tuner's own `tuner/...` entries."""
    return {k: v for k, v in values.items() if not k.startswith(RESERVED_PREFIX)}


def _parameter(entry: Any, where: str, field: str) -> Parameter:
    if not isinstance(entry, Mapping):
        raise BadInput(where, f"must be a mapping {{name, type, ...}}, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{where}.name", f"{name!r} is not a usable name: start with a letter; "
                                        "letters, digits, '_', '.', '-'")
    where = f"{field}.{name}"
    kind = entry.get("type")
    if kind not in TYPES:
        raise BadInput(f"{where}.type", f"unknown type {kind!r}; allowed: {', '.join(TYPES)}")
    unknown = sorted(set(entry) - set(_KEYS[kind]))
    if unknown:
        raise BadInput(f"{where}.{unknown[0]}",
                       f"unknown key for a {kind}; allowed: {', '.join(_KEYS[kind])}")
    if kind == "choice":
        return Parameter(name, kind, values=_choice_values(entry.get("values"), f"{where}.values"))

    number = _integer if kind == "int" else _finite
    for key in ("min", "max"):
        if key not in entry:
            raise BadInput(f"{where}.{key}", f"missing; an {kind} needs min and max")
    low, high = number(entry["min"], f"{where}.min"), number(entry["max"], f"{where}.max")
    if low >= high:
        raise BadInput(f"{where}.min", f"must be < max, got min={low} max={high}")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise BadInput(f"{where}.log", f"must be true or false, got {log!r}")
    if log and low <= 0:
        raise BadInput(f"{where}.min", f"must be > 0 with log: true, got {low}")
    step = entry.get("step")
    if step is not None:
        step = number(step, f"{where}.step")
        if log and step <= 1:
            raise BadInput(f"{where}.step",
                           f"with log: true the step is a multiplier and must be > 1, got {step}")
        if not log and not 0 < step <= high - low:
            raise BadInput(f"{where}.step", f"must be > 0 and <= max - min ({high - low}), got {step}")
    param = Parameter(name, kind, min=low, max=high, step=step, log=log)
    if step is not None and len(_grid_points(param)) > MAX_GRID_POINTS:
        raise BadInput(f"{where}.step", f"gives more than {MAX_GRID_POINTS} values between min and max; "
                                        "use a larger step")
    return param


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(where, f"must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value)):
        raise BadInput(where, f"must be an integer, got {value!r}")
    return int(value)


def _choice_values(values: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(values, list) or not values:
        raise BadInput(where, "must be a non-empty list of numbers, strings or booleans")
    if all(isinstance(v, bool) for v in values):
        pass
    elif all(isinstance(v, str) for v in values):
        if "" in values:
            raise BadInput(where, "an empty string is not a usable value")
    elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise BadInput(where, f"must be finite numbers, got {bad[0]!r}")
        if any(isinstance(v, float) for v in values):  # Keras Tuner wants one type: [1e-3, 1] → floats
            values = [float(v) for v in values]
    else:
        raise BadInput(where, f"must all be numbers, all strings or all booleans, got {values!r}")
    dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if dup is not None:
        raise BadInput(where, f"lists {dup!r} twice")
    return tuple(values)


def _grid_points(p: Parameter) -> tuple[Any, ...]:
    assert p.min is not None and p.max is not None
    step = p.step if p.step is not None else 1
    tolerance = 1e-9 * max(abs(p.max), abs(p.min), 1.0)
    points: list[Any] = []
    i = 0
    while True:
        value = p.min * step**i if p.log else p.min + i * step
        if value > p.max + tolerance or len(points) > MAX_GRID_POINTS:
            break
        points.append(int(round(value)) if p.type == "int" else float(f"{value:.12g}"))
        i += 1
    return tuple(points)
