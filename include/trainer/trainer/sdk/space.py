"""A declarative search-space parameter declared on Keras Tuner's `hp`.

`declare(hp, parameter, default)` turns one `tune_contract.search_space.Parameter` (the schema
the `search_space` run parameter and `DEFAULT_SPACE` use) into the Keras Tuner call that
declares it, in the current conditional scope, and returns its value: how a model declares its
hyperparameters from a declarative space (the built-in model does), and how the trainer builds
the oracle's space from a run's (`trainer.tuning.search_space`).

A stepped float becomes an ordered Keras Tuner `Choice` of its exact grid points:
`hp.Float(0, 0.5, step=0.1)` enumerates 0.0, 0.1, 0.2, 0.30000000000000004, 0.4 (float floor
division drops the maximum), which would make a grid search miss 0.5 and hand training
unrounded values.
"""
from __future__ import annotations

from typing import Any

from tune_contract.search_space import Parameter


def declare(hp, p: Parameter, default: Any = None) -> Any:
    """Declare `p` on Keras Tuner `hp`, in the current conditional scope; returns its value.
    A choice of one value is fixed (hp.Fixed)."""
    sampling = "log" if p.log else "linear"
    if p.type == "choice" and len(p.values) == 1:
        return hp.Fixed(p.name, p.values[0])
    if p.type == "choice":
        return hp.Choice(p.name, list(p.values), default=default)
    if p.step is not None and (p.type == "float" or p.log):
        return hp.Choice(p.name, list(p.grid()), ordered=True, default=default)  # exact, rounded grid points
    if p.type == "int":
        return hp.Int(p.name, p.min, p.max, step=p.step, sampling=sampling, default=default)
    return hp.Float(p.name, p.min, p.max, sampling=sampling, default=default)
