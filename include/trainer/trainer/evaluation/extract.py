"""TFMA's output read back as the evaluate step's result: the candidate's metrics overall and per
slice (with the baseline's headline metric beside each), a binary classifier's calibration plot,
and the thresholds that failed."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from trainer.errors import StepFailed
from trainer.evaluation.config import BASELINE, CANDIDATE
from trainer.evaluation.verdict import HEADLINE

if TYPE_CHECKING:
    from trainer.featurespec import FeatureSpec

OVERALL = "overall"
_TFMA_NAMES = {"example_count": "example_count", "mae": "mean_absolute_error", "mse": "mean_squared_error"}


def analysis(output_path: str, spec: FeatureSpec, with_baseline: bool) -> dict:
    """{calibration_plot, validation_ok, failed_thresholds, overall, slices, baseline} from the
    TFMA output at `output_path`."""
    import tensorflow_model_analysis as tfma

    # With one model TFMA leaves metric keys without a model name: look it up by name only with two.
    candidate_result = tfma.load_eval_result(output_path, model_name=CANDIDATE if with_baseline else None)
    by_slice = classifier_metrics_by_slice if spec.is_classification else metrics_by_slice
    candidate = by_slice(candidate_result)
    baseline = by_slice(tfma.load_eval_result(output_path, model_name=BASELINE)) if with_baseline else {}
    headline = HEADLINE[spec.task][0]
    if OVERALL not in candidate or (with_baseline and OVERALL not in baseline):
        raise StepFailed(f"TFMA wrote no overall metrics to {output_path}")
    slices = []
    for key, metrics in candidate.items():
        if key == OVERALL:
            continue
        feature, value = key
        row = {"feature": feature, "value": value, **metrics}
        if key in baseline:
            row[f"baseline_{headline}"] = baseline[key].get(headline)
        slices.append(row)
    slices.sort(key=lambda r: (r["feature"], -(r["example_count"] or 0), r["value"]))

    validation = tfma.load_validation_result(output_path)
    return {
        "calibration_plot": calibration_plot(output_path, with_baseline) if spec.task == "binary" else None,
        "validation_ok": bool(validation.validation_ok),
        "failed_thresholds": failed_thresholds(validation),
        "overall": candidate[OVERALL],
        "slices": slices,
        "baseline": {"overall": baseline[OVERALL]} if OVERALL in baseline else None,
    }


def metrics_by_slice(eval_result) -> dict:
    """{OVERALL | (feature, value): {example_count, mae, mse}} from a TFMA EvalResult."""
    by_slice = {}
    for slice_key, outputs in eval_result.slicing_metrics:
        values = outputs.get("", {}).get("", {})
        metrics = {key: _number(values.get(name)) for key, name in _TFMA_NAMES.items()}
        if metrics["example_count"] is not None:
            metrics["example_count"] = int(metrics["example_count"])
        by_slice[_slice_name(slice_key)] = metrics
    return by_slice


def classifier_metrics_by_slice(eval_result) -> dict:
    """{OVERALL | (feature, value): {example_count, auc, accuracy, precision, recall, calibration
    (binary) | calibration_per_class (multiclass)}}. TFMA keys a binarized metric by its class
    (`classId:1`) and a micro-averaged one by a name carrying the aggregation."""
    by_slice = {}
    for slice_key, outputs in eval_result.slicing_metrics:
        metrics: dict = {"calibration_per_class": {}}
        for sub_key, values in outputs.get("", {}).items():
            for name, value in values.items():
                short = name.rsplit("_", 1)[-1] if name.startswith("micro_average") else name
                number = _number(value)
                if short == "calibration" and sub_key.startswith("classId:") and "binary_accuracy" not in values:
                    metrics["calibration_per_class"][sub_key.split(":", 1)[1]] = number
                    continue
                key = {"binary_accuracy": "accuracy", "example_count": "example_count"}.get(short, short)
                if key in ("auc", "accuracy", "precision", "recall", "calibration", "example_count"):
                    metrics[key] = number
        if metrics.get("example_count") is not None:
            metrics["example_count"] = int(metrics["example_count"])
        if not metrics["calibration_per_class"]:
            metrics.pop("calibration_per_class")
        by_slice[_slice_name(slice_key)] = metrics
    return by_slice


def calibration_plot(output_path: str, with_baseline: bool) -> list[dict] | None:
    """The overall calibration plot of the candidate: [{lower, upper, examples, mean_prediction,
    mean_label}] per bucket of predicted probability that holds examples."""
    import tensorflow_model_analysis as tfma

    try:
        plots = tfma.load_plots(output_path)
    except Exception:  # an eval without plots: the report just has no plot
        return None
    for plot in plots:
        if plot.slice_key.single_slice_keys:
            continue
        for key_and_value in plot.plot_keys_and_values:
            if with_baseline and key_and_value.key.model_name not in ("", CANDIDATE):
                continue
            buckets = key_and_value.value.calibration_histogram_buckets.buckets
            rows = []
            for bucket in buckets:
                count = bucket.num_weighted_examples.value
                if count <= 0 or not (math.isfinite(bucket.lower_threshold_inclusive)
                                      and math.isfinite(bucket.upper_threshold_exclusive)):
                    continue
                rows.append({"lower": bucket.lower_threshold_inclusive, "upper": bucket.upper_threshold_exclusive,
                             "examples": int(count),
                             "mean_prediction": bucket.total_weighted_refined_prediction.value / count,
                             "mean_label": bucket.total_weighted_label.value / count})
            if rows:
                return rows
    return None


def _slice_name(slice_key):
    if not slice_key:
        return OVERALL
    (feature, value), = slice_key  # one feature per slicing spec
    return feature, value.decode() if isinstance(value, bytes) else str(value)


def _number(value) -> float | None:
    if not isinstance(value, dict):
        return None
    number = value.get("doubleValue", value.get("boundedValue", {}).get("value"))
    return None if number is None else float(number)


def failed_thresholds(validation) -> list[dict]:
    failed = []
    for per_slice in validation.metric_validations_per_slice:
        keys = per_slice.slice_key.single_slice_keys
        slice_label = ", ".join(f"{k.column}={_slice_value(k)}" for k in keys) or OVERALL
        for failure in per_slice.failures:
            key = failure.metric_key
            failed.append({
                # A change threshold is checked on the candidate-minus-baseline value,
                # which TFMA's metrics output calls `<metric>_diff`.
                "metric": f"{key.name}_diff" if key.is_diff else key.name,
                "model": key.model_name or CANDIDATE,
                "slice": slice_label,
                "threshold": describe_threshold(failure.metric_threshold),
                "value": failure.metric_value.double_value.value,
            })
    for spec in validation.missing_slices:  # a gated slice absent from the eval data fails the validation
        feature = ", ".join(spec.feature_keys) or OVERALL
        failed.append({"metric": "example_count", "model": CANDIDATE, "slice": feature,
                       "threshold": "slice present in the eval data", "value": 0})
    return failed


def _slice_value(key) -> str:
    kind = key.WhichOneof("kind")
    value = getattr(key, kind) if kind else ""
    return value.decode() if isinstance(value, bytes) else str(value)


def describe_threshold(threshold) -> str:
    parts = []
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("upper_bound"):
            parts.append(f"<= {bounds.upper_bound.value:g}")
        if bounds.HasField("lower_bound"):
            parts.append(f">= {bounds.lower_bound.value:g}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        from tensorflow_model_analysis.proto import config_pb2

        op = ">=" if change.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER else "<="
        if change.HasField("absolute"):
            parts.append(f"candidate - baseline {op} {change.absolute.value:g}")
        if change.HasField("relative"):
            parts.append(f"(candidate - baseline) / baseline {op} {change.relative.value:g}")
    return " and ".join(parts) or "unknown threshold"
