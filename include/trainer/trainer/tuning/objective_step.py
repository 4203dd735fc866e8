"""Step `objective`: evaluate one benchmark function at one point, as a tune worker would
(flags: `tune_contract.steps.ObjectiveArgs`)."""
from __future__ import annotations

import json
import time

from tune_contract.search_space import validate
from tune_contract.steps import ObjectiveArgs

from trainer.errors import BadInput
from trainer.tuning.algorithms.benchmarks import _SPACES, DEFAULT_SLEEP_SECONDS, evaluate


def run(args: ObjectiveArgs) -> dict:
    """`args`: parsed by `ObjectiveArgs.from_args` (--function one of the benchmarks, the epochs
    and seconds in their ranges)."""
    epochs = args.epochs
    sleep = DEFAULT_SLEEP_SECONDS[args.function] if args.sleep_seconds is None else args.sleep_seconds
    try:
        given = json.loads(args.hyperparameters)
    except json.JSONDecodeError as exc:
        raise BadInput("--hyperparameters", f"not JSON: {exc}") from None
    if not isinstance(given, dict):
        raise BadInput("--hyperparameters", "must be a JSON object {name: value}")
    space = validate(_SPACES[args.function])
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
