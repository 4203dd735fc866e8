"""Benchmark objectives: a plain function in place of the Keras model, through the same
distributed path (`oracle`/`tune --objective-function NAME`), minimising `value`.

- `branin`: the Branin-Hoo function on x1 in [-5, 10], x2 in [0, 15]; global minimum
  0.397887 at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475). Measures how well an
  algorithm searches.
- `sleep`: sleeps `--sleep-seconds` per epoch, value (x - 0.5)^2 + 0.1 / (epoch + 1)
  (better with more epochs, so Hyperband has something to prune). Measures how the
  distribution scales and what a lost worker costs, without TensorFlow's noise.

Each epoch is recorded in the trial's progress, so a killed worker's trial resumes at the
next epoch like a Keras trial does.

The `objective` step evaluates one function at one point, as a worker would.
"""
from __future__ import annotations

import json
import math
import time

from trainer.errors import BadInput

HELP = "Evaluate a benchmark objective (branin, sleep) at one point, as a tune worker would."
NAMES = ("branin", "sleep")

_SPACES = {
    "branin": [
        {"name": "x1", "type": "float", "min": -5.0, "max": 10.0},
        {"name": "x2", "type": "float", "min": 0.0, "max": 15.0},
    ],
    "sleep": [{"name": "x", "type": "float", "min": 0.0, "max": 1.0}],
}
DEFAULT_SLEEP_SECONDS = {"branin": 0.0, "sleep": 1.0}
BRANIN_MINIMUM = 0.397887


def default_space(name: str) -> list[dict]:
    return [dict(p) for p in _SPACES[name]]


def parameter_names(name: str) -> list[str]:
    return [p["name"] for p in _SPACES[name]]


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def evaluate(name: str, values: dict, epoch: int) -> float:
    if name == "branin":
        return branin(float(values["x1"]), float(values["x2"]))
    return (float(values["x"]) - 0.5) ** 2 + 0.1 / (epoch + 1)


def _tuner_class():
    # Imported on use: `python -m trainer --help` must not load Keras Tuner.
    from trainer.tuning.worker import LeasedTuner

    class FunctionTuner(LeasedTuner):
        def __init__(self, oracle, settings, tuner_id: str, sleep_seconds: float):
            super().__init__(oracle, settings, tuner_id)
            self.sleep_seconds = sleep_seconds

        def run_execution(self, trial, values, execution, epochs, initial_epoch, progress, record):
            start = max(initial_epoch, record.last_epoch())
            self.note_resumed(start - initial_epoch)
            for epoch in range(start, epochs):
                self._sleep()
                record.epochs[epoch] = {"value": evaluate(self.settings.function, values, epoch)}
                progress.save(execution, record)
            record.complete = True
            progress.save(execution, record)
            return record

        def _sleep(self) -> None:
            end = time.monotonic() + self.sleep_seconds
            while True:  # in slices, so a lost lease stops the trial promptly
                self.check_lease()
                left = end - time.monotonic()
                if left <= 0:
                    return
                time.sleep(min(left, 0.1))

    return FunctionTuner


def make_tuner(oracle, settings, tuner_id: str, sleep_seconds: float):
    return _tuner_class()(oracle, settings, tuner_id, sleep_seconds)


# -- the `objective` step ------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--function", required=True, help=f"one of {', '.join(NAMES)}")
    parser.add_argument("--hyperparameters", default="{}", help="JSON values, e.g. '{\"x1\": 3.14, \"x2\": 2.275}' (default: each minimum)")
    parser.add_argument("--epochs", default="1", help="epochs to run (default 1)")
    parser.add_argument("--sleep-seconds", help="seconds per epoch (default: 1 for sleep, 0 for branin)")


def run(args) -> dict:
    from trainer.tuning import search_space as ss
    from trainer.tuning import settings as st

    if args.function not in NAMES:
        raise BadInput("--function", f"unknown function {args.function!r}; allowed: {', '.join(NAMES)}")
    epochs = st.positive_int("--epochs", args.epochs)
    sleep = DEFAULT_SLEEP_SECONDS[args.function] if args.sleep_seconds is None else non_negative_seconds(args.sleep_seconds)
    try:
        given = json.loads(args.hyperparameters)
    except json.JSONDecodeError as exc:
        raise BadInput("--hyperparameters", f"not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise BadInput("--hyperparameters", "must be a JSON object {name: value}")
    space = ss.validate(_SPACES[args.function])
    values = {}
    for p in space.parameters:
        value = given.pop(p.name, p.min)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not p.min <= value <= p.max:
            raise BadInput(f"--hyperparameters.{p.name}", f"must be a number in [{p.min}, {p.max}], got {value!r}")
        values[p.name] = float(value)
    if given:
        raise BadInput(f"--hyperparameters.{sorted(given)[0]}", f"unknown; {args.function} takes {', '.join(space.names)}")

    started = time.monotonic()
    value = None
    for epoch in range(epochs):
        time.sleep(sleep)
        value = evaluate(args.function, values, epoch)
    return {"function": args.function, "hyperparameters": values, "value": value, "epochs": epochs,
            "seconds": round(time.monotonic() - started, 3)}


def non_negative_seconds(value) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BadInput("--sleep-seconds", f"must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise BadInput("--sleep-seconds", f"must be >= 0, got {value!r}")
    return number
