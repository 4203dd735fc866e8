"""The search space as data (Katib-like), validated before anything trains.

A space is a list of parameters (JSON or YAML; inline, or the URI of a file; a mapping
`{"parameters": [...]}` is accepted too)::

    - {name: num_layers,    type: int,    min: 1,    max: 3}
    - {name: units,         type: int,    min: 16,   max: 128, step: 16}
    - {name: dropout,       type: float,  min: 0.0,  max: 0.5, step: 0.1}
    - {name: learning_rate, type: float,  min: 1e-4, max: 1e-1, log: true}
    - {name: batch_size,    type: choice, values: [64, 128, 256]}

`min` and `max` are inclusive. With `log: true` values are sampled on a log scale
(`min` > 0) and a `step`, if any, is a multiplier (> 1): `{min: 1e-4, max: 1e-1, step: 10,
log: true}` is 1e-4, 1e-3, 1e-2, 1e-1.

A stepped float becomes an ordered Keras Tuner `Choice` of its exact grid points:
`kt.HyperParameters.Float(0, 0.5, step=0.1)` enumerates 0.0, 0.1, 0.2, 0.30000000000000004,
0.4 (float floor division drops the maximum), which would make a grid search miss 0.5 and
hand training unrounded values.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from trainer.errors import BadInput
from trainer.featurespec import parse_mapping, read_mapping

TYPES = ("int", "float", "choice")
ALGORITHMS_NEEDING_DISCRETE = ("grid",)
# Keras Tuner writes its own bookkeeping values (Hyperband's epochs, brackets…) under this prefix.
RESERVED_PREFIX = "tuner/"
MAX_GRID_POINTS = 1000  # per parameter: a smaller step is almost certainly a typo

_KEYS = {
    "int": ("name", "type", "min", "max", "step", "log"),
    "float": ("name", "type", "min", "max", "step", "log"),
    "choice": ("name", "type", "values"),
}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")

DEFAULT_SPACE = [
    {"name": "num_layers", "type": "int", "min": 1, "max": 3},
    {"name": "units", "type": "int", "min": 16, "max": 128, "step": 16},
    {"name": "dropout", "type": "float", "min": 0.0, "max": 0.5, "step": 0.1},
    {"name": "learning_rate", "type": "float", "min": 1e-4, "max": 1e-1, "log": True},
    {"name": "batch_size", "type": "choice", "values": [64, 128, 256]},
]


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None
    log: bool = False
    values: tuple = ()

    @property
    def discrete(self) -> bool:
        """Enumerable without guessing: a choice, a linear int, or anything with a step."""
        return self.type == "choice" or self.step is not None or (self.type == "int" and not self.log)

    def grid(self) -> tuple:
        """Every value of a discrete parameter, in order (the values of a choice)."""
        if self.type == "choice":
            return self.values
        return _grid_points(self)

    def to_dict(self) -> dict:
        if self.type == "choice":
            return {"name": self.name, "type": "choice", "values": list(self.values)}
        d = {"name": self.name, "type": self.type, "min": self.min, "max": self.max}
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

    def to_list(self) -> list[dict]:
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
                    or not p.min <= value <= p.max:
                return f"{p.name}={value!r} is outside [{p.min}, {p.max}]"
            if p.type == "int" and (value != int(value) or (p.step and (value - p.min) % p.step)):
                return f"{p.name}={value!r} is not on its grid (min {p.min}, step {p.step or 1})"
        return None

    def require_discrete(self, algorithm: str, field: str = "--search-space") -> None:
        continuous = [p for p in self.parameters if not p.discrete]
        if continuous:
            p = continuous[0]
            how = "give it a step (a multiplier > 1 with log)" if p.type == "float" or p.log else "give it a step"
            raise BadInput(
                f"{field}.{p.name}",
                f"the {algorithm} algorithm needs every parameter discrete (choice, or int/float with step); "
                f"{p.name} is a continuous {p.type}: {how}, make it a choice, or use random/bayesian/hyperband",
            )

    def require_names(self, allowed: Iterable[str], what: str, field: str = "--search-space") -> None:
        """Every parameter must be one `what` understands: a typo would otherwise be tuned and ignored."""
        allowed = list(allowed)
        for p in self.parameters:
            if p.name not in allowed:
                raise BadInput(f"{field}.{p.name}", f"not a hyperparameter of {what}; allowed: {', '.join(allowed)}")


# -- parsing and validation ---------------------------------------------------------------


def load(value: str | None, default: list[dict] | None = None, field: str = "--search-space") -> SearchSpace:
    """Parse `--search-space`: None → `default`; inline JSON/YAML (starts with '[' or '{',
    or spans lines) → parsed; anything else is the URI of a JSON/YAML file."""
    if value is None or not value.strip():
        return validate(DEFAULT_SPACE if default is None else default, field)
    text = value.strip()
    if text[0] in "[{" or "\n" in text:
        return validate(parse_mapping(text, field), field)
    return validate(read_mapping(text, field_name=field), field)


def validate(data: Any, field: str = "--search-space") -> SearchSpace:
    if isinstance(data, Mapping):
        unknown = sorted(set(data) - {"parameters"})
        if unknown:
            raise BadInput(f"{field}.{unknown[0]}", "unknown key; allowed: parameters")
        data = data.get("parameters")
    if not isinstance(data, list) or not data:
        raise BadInput(field, "must be a non-empty list of parameters ({name, type, ...})")
    params, seen = [], set()
    for index, entry in enumerate(data):
        param = _parameter(entry, f"{field}[{index}]", field)
        if param.name in seen:
            raise BadInput(f"{field}.{param.name}", "defined twice; parameter names must be unique")
        seen.add(param.name)
        params.append(param)
    return SearchSpace(tuple(params))


def _parameter(entry: Any, where: str, field: str) -> Parameter:
    if not isinstance(entry, Mapping):
        raise BadInput(where, f"must be a mapping {{name, type, ...}}, got {type(entry).__name__}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"{where}.name", f"{name!r} is not a usable name: start with a letter; letters, digits, '_', '.', '-'")
    where = f"{field}.{name}"
    kind = entry.get("type")
    if kind not in TYPES:
        raise BadInput(f"{where}.type", f"unknown type {kind!r}; allowed: {', '.join(TYPES)}")
    unknown = sorted(set(entry) - set(_KEYS[kind]))
    if unknown:
        raise BadInput(f"{where}.{unknown[0]}", f"unknown key for a {kind}; allowed: {', '.join(_KEYS[kind])}")
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
            raise BadInput(f"{where}.step", f"with log: true the step is a multiplier and must be > 1, got {step}")
        if not log and not 0 < step <= high - low:
            raise BadInput(f"{where}.step", f"must be > 0 and <= max - min ({high - low}), got {step}")
    param = Parameter(name, kind, min=low, max=high, step=step, log=log)
    if step is not None and len(_grid_points(param)) > MAX_GRID_POINTS:
        raise BadInput(f"{where}.step", f"gives more than {MAX_GRID_POINTS} values between min and max; use a larger step")
    return param


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(where, f"must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        raise BadInput(where, f"must be an integer, got {value!r}")
    return int(value)


def _choice_values(values: Any, where: str) -> tuple:
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


def _grid_points(p: Parameter) -> tuple:
    step = p.step if p.step is not None else 1
    tolerance = 1e-9 * max(abs(p.max), abs(p.min), 1.0)
    points, i = [], 0
    while True:
        value = p.min * step**i if p.log else p.min + i * step
        if value > p.max + tolerance or len(points) > MAX_GRID_POINTS:
            break
        points.append(int(round(value)) if p.type == "int" else float(f"{value:.12g}"))
        i += 1
    return tuple(points)


# -- Keras Tuner -------------------------------------------------------------------------------


def to_hyperparameters(space: SearchSpace):
    """The `keras_tuner.HyperParameters` the oracle samples from (tune_new_entries=False)."""
    import keras_tuner as kt

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


def user_values(values: Mapping[str, Any]) -> dict:
    """A trial's values without Keras Tuner's own `tuner/...` entries."""
    return {k: v for k, v in values.items() if not k.startswith(RESERVED_PREFIX)}
