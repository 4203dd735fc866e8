"""Which early-stopping rule a search runs: one decision, made the same way by the plan (which
states it) and by the chief (which applies it).

`--early-stopping` / the run parameter `early_stopping`:

- `median`: Optuna's MedianPruner — stop a trial whose best value so far is worse than the
  median of the completed trials' values at the same epoch;
- `asha`: Optuna's SuccessiveHalvingPruner, asynchronous successive halving — at epochs 1, 3,
  9, … (rungs, reduction factor 3) keep a trial only if its value is in the best third of every
  trial that reached that rung, running or not;
- `off`: every trial runs all its epochs;
- `auto` (default): AUTO_RULE for the model-based algorithms (bayesian, tpe), which learn from
  every trial and so gain most from spending fewer epochs on bad ones; off for random and grid
  (the anchors every method is compared with run each trial to the end) and for hyperband
  (which stops trials itself, by its brackets).
"""
from __future__ import annotations

from typing import Final

from tune_contract.enums import EARLY_STOPPING
from tune_contract.errors import BadInput

RULES: Final = ("median", "asha", "none")
AUTO_ON: Final = ("bayesian", "tpe", "gp")
# The rule `auto` picks, chosen by the diamonds benchmark (bench/diamonds_epochs.py, bench/RESULTS.md
# 2026-11-29 issue 12; 5 seeds, 8 trials x 6 epochs): median kept the best val MAE of every seed
# with 31% fewer epochs (median 33 of 48); asha saved 58% (20 of 48) but pruned the trial that
# would have been the best on 1 seed of 5 (664 against 556 val MAE).
AUTO_RULE: Final = "median"

_AUTO_OFF_WHY: Final = {
    "random": "random search is the anchor: its trials run to the end",
    "grid": "grid search is an anchor: its trials run to the end",
    "hyperband": "hyperband stops trials itself, by its brackets",
}


def resolve(choice: str, algorithm: str, field: str = "--early-stopping") -> tuple[str, str]:
    """(rule, why): the rule in RULES this search runs, and the sentence the plan shows."""
    if choice not in EARLY_STOPPING:
        raise BadInput(field, f"unknown value {choice!r}; allowed: {', '.join(EARLY_STOPPING)}")
    if choice == "off":
        return "none", "off (early_stopping=off): every trial runs all its epochs"
    if choice == "auto":
        if algorithm in AUTO_ON:
            return AUTO_RULE, f"{AUTO_RULE} (auto for {algorithm})"
        return "none", (f"off (auto for {algorithm}: "
                        f"{_AUTO_OFF_WHY.get(algorithm, 'not a model-based search')})")
    if algorithm == "hyperband":
        raise BadInput(field, f"{choice} cannot be combined with the hyperband algorithm, which stops "
                              "trials by its own brackets; use auto or off, or another algorithm")
    return choice, f"{choice} (chosen)"
