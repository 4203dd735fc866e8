"""Benchmark objectives: a plain function in place of the Keras model, through the same
distributed path (`oracle`/`tune --objective-function NAME`), minimising `value`.

- `branin`: the Branin-Hoo function on x1 in [-5, 10], x2 in [0, 15]; global minimum
  0.397887 at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475). Measures how well an
  algorithm searches.
- `hartmann6`: the 6-dimensional Hartmann function on [0, 1]^6; global minimum -3.32237
  at (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573). A harder, higher-dimensional
  search than Branin (six local minima).
- `sleep`: sleeps `--sleep-seconds` per epoch, value (x - 0.5)^2 + 0.1 / (epoch + 1)
  (better with more epochs, so Hyperband has something to prune). Measures how the
  distribution scales and what a lost worker costs, without TensorFlow's noise.

Each epoch is recorded in the trial's progress, so a killed worker's trial resumes at the
next epoch like a Keras trial does.

The names and spaces are the contract's (`tune_contract`); the tuner that runs them is
`function_tuner`, the `objective` step `objective_step`.
"""
from __future__ import annotations

import math

from tune_contract.enums import BENCHMARK_FUNCTIONS
from tune_contract.search_space import BENCHMARK_SPACES, default_space, parameter_names


NAMES = BENCHMARK_FUNCTIONS
_SPACES = BENCHMARK_SPACES
__all__ = ["BRANIN_MINIMUM", "DEFAULT_SLEEP_SECONDS", "HARTMANN6_MINIMUM", "NAMES", "branin", "default_space",
           "evaluate", "hartmann6", "parameter_names"]
DEFAULT_SLEEP_SECONDS = {"branin": 0.0, "sleep": 1.0, "hartmann6": 0.0}
BRANIN_MINIMUM = 0.397887
HARTMANN6_MINIMUM = -3.32237

_HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
_HARTMANN_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14), (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14))
_HARTMANN_P = ((1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
               (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381))


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x: list[float]) -> float:
    return -sum(alpha * math.exp(-sum(a * (xj - p * 1e-4) ** 2 for a, xj, p in zip(row, x, prow)))
                for alpha, row, prow in zip(_HARTMANN_ALPHA, _HARTMANN_A, _HARTMANN_P))


def evaluate(name: str, values: dict, epoch: int) -> float:
    if name == "branin":
        return branin(float(values["x1"]), float(values["x2"]))
    if name == "hartmann6":
        return hartmann6([float(values[f"x{i}"]) for i in range(1, 7)])
    return (float(values["x"]) - 0.5) ** 2 + 0.1 / (epoch + 1)

