"""The blessing of a candidate, and its reasons: TFMA's validation where a gate applies,
finite overall metrics always."""
from __future__ import annotations

import math

# the metric a task is judged by (thresholds, the choice between blessed candidates, the summary)
# and the ones that must be finite for a model to be served
HEADLINE = {"regression": ("mae", "min"), "binary": ("auc", "max"), "multiclass": ("accuracy", "max")}
MUST_BE_FINITE = {"regression": ("mae", "mse"), "binary": ("auc", "accuracy"), "multiclass": ("auc", "accuracy")}


def verdict(validation_ok: bool, failed: list[dict], overall: dict, gated: bool,
            has_baseline: bool, task: str = "regression") -> tuple[bool, list[str]]:
    """(blessed, reasons): TFMA's validation where a gate applies, finite metrics always.

    Without any gate TFMA reports `validation_ok: false` with no failure listed, so its
    answer is not used then: a first model with finite metrics is blessed.
    """
    not_finite = [name for name in MUST_BE_FINITE[task]
                  if not (isinstance(overall.get(name), (int, float)) and math.isfinite(overall[name]))]
    if not_finite:
        values = ", ".join(f"{name}={overall.get(name)}" for name in not_finite)
        return False, [f"overall metrics are not finite ({values}): the model cannot be served"]
    if not gated:
        if task == "regression":
            why = ("no model serving yet and no MAE bound: a first model with finite metrics is blessed"
                   if not has_baseline
                   else "no MAE bound and no allowed increase over the model serving: nothing to gate on")
        else:
            why = ("no model serving yet and no AUC or accuracy bound: a first model with finite metrics is blessed"
                   if not has_baseline else "no AUC or accuracy bound and no allowed AUC decrease: nothing to gate on")
        return True, [why]
    if validation_ok:
        return True, ["passes every threshold"]
    reasons = [_failure_reason(f) for f in failed]
    return False, reasons or ["TFMA's validation failed without naming a threshold (see validations in the eval dir)"]


def _failure_reason(failure: dict) -> str:
    # a HIGHER_IS_BETTER change threshold reads "candidate - baseline >= -D" (see extract.describe_threshold)
    if failure["metric"].endswith("_diff") and "baseline >=" in failure["threshold"]:
        return (f"{failure['value']:+.6g} {failure['metric'].removesuffix('_diff')} on {failure['slice']}: lower than "
                f"the model serving by more than allowed ({failure['threshold']})")
    if failure["metric"].endswith("_diff"):
        return (f"{failure['value']:+.6g} {failure['metric'].removesuffix('_diff')} on {failure['slice']}: worse than "
                f"the model serving by more than allowed ({failure['threshold']})")
    return f"{failure['metric']} on {failure['slice']} = {failure['value']:.6g}, required {failure['threshold']}"
