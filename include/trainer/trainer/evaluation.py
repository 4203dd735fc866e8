"""Step `evaluate`: TFMA on the eval split, thresholds, the blessing, and an HTML report.

The candidate (and the baseline — the model serving now — when given) are scored through
their `from_examples` signature on `{run_root}/data/eval.tfrecord`: ExampleCount, MAE and
MSE overall and per value of each slice feature. The blessing (`verdict`):
- overall metrics that are not finite (NaN, infinite, missing) never pass;
- `--mae-upper-bound B`: overall MAE <= B;
- `--max-mae-increase D` (with a baseline, the model serving now): overall MAE <= baseline MAE + D;
- neither gate applies (no bound, and no model serving yet or no increase given): blessed.
Thresholds gate on the overall slice; per-slice numbers are reported, not gated (a slice of
a dozen rows is too noisy to block a release). Every verdict carries `reasons`: at least
one sentence, and always one for a refusal.

Writes `{run_root}/eval/{rank}/` whole (temporary directory, then swapped in): TFMA output,
`report.html`, `evaluation.json`.
"""
from __future__ import annotations

import json
import math
import time

from tune_contract import layout
from tune_contract.results import finite
from tune_contract.steps import EvaluateArgs

from trainer import data, storage
from trainer.errors import BadInput, StepFailed

CANDIDATE, BASELINE = "candidate", "baseline"
OVERALL = "overall"
_METRICS = {"example_count": "ExampleCount", "mae": "MeanAbsoluteError", "mse": "MeanSquaredError"}
_TFMA_NAMES = {"example_count": "example_count", "mae": "mean_absolute_error", "mse": "mean_squared_error"}


def eval_dir(run_root: str, rank: int) -> str:
    return layout.eval_dir(run_root, rank)


def run(args: EvaluateArgs) -> dict:
    from trainer import savedmodel

    _check_flags(args)
    data_dir = data.data_dir(args.run_root)
    spec = data.load_feature_spec(data_dir)
    for flag, path in (("--model-path", args.model_path), ("--baseline-model-path", args.baseline_model_path)):
        if path and not savedmodel.is_complete(path):
            raise BadInput(flag, f"no SavedModel at {path}")
    slice_features = _slice_features(args.slice_features, spec)
    eval_data = data.split_path(data_dir, "eval")
    if not storage.exists(eval_data):
        raise BadInput("--run-root", f"no prepared data: {eval_data} not found (run the prepare step first)")

    started = time.monotonic()
    config = build_eval_config(spec.label, spec.signature_key(spec.label), slice_features, has_baseline=bool(args.baseline_model_path),
                               mae_upper_bound=args.mae_upper_bound, max_mae_increase=args.max_mae_increase)
    out = eval_dir(args.run_root, args.rank)
    storage.remove_stale_temps(out)
    tmp = storage.temp_name(out)
    try:
        analysis = _run_tfma(config, args.model_path, args.baseline_model_path, eval_data, tmp)
        gated = args.mae_upper_bound is not None or (
            bool(args.baseline_model_path) and args.max_mae_increase is not None)
        blessed, reasons = verdict(analysis["validation_ok"], analysis["failed_thresholds"], analysis["overall"],
                                   gated=gated, has_baseline=bool(args.baseline_model_path))
        result = {
            "rank": args.rank,
            "model_path": args.model_path,
            "baseline_model_path": args.baseline_model_path,
            "blessed": blessed,
            "reasons": reasons,
            "failed_thresholds": analysis["failed_thresholds"],
            "thresholds": {"mae_upper_bound": args.mae_upper_bound,
                           "max_mae_increase": args.max_mae_increase if args.baseline_model_path else None},
            "overall": analysis["overall"],
            "slices": analysis["slices"],
            "baseline": analysis["baseline"],
            "eval_dir": out,
            "report": storage.join(out, "report.html"),
        }
        from trainer.report import render_report

        storage.write_text(storage.join(tmp, "report.html"), render_report(result, label=spec.label))
        result["seconds"] = round(time.monotonic() - started, 1)
        storage.write_text(storage.join(tmp, layout.EVALUATION_FILE), json.dumps(finite(result), indent=2) + "\n")
        storage.replace_dir(tmp, out)
    except BaseException:
        storage.rmtree(tmp)
        raise
    return result


def _check_flags(args) -> None:
    if args.rank < 0:
        raise BadInput("--rank", f"must be >= 0, got {args.rank}")
    bound = args.mae_upper_bound
    if bound is not None and not (math.isfinite(bound) and bound > 0):
        raise BadInput("--mae-upper-bound", f"must be a number > 0, got {bound}")
    increase = args.max_mae_increase
    if increase is not None and not (math.isfinite(increase) and increase >= 0):
        raise BadInput("--max-mae-increase", f"must be a number >= 0, got {increase}")


def _slice_features(value: str | None, spec) -> list[str]:
    if value is None:
        return list(spec.categorical)
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if not spec.is_categorical(name):
            allowed = ", ".join(spec.categorical) or "(none: the spec has no categorical feature)"
            raise BadInput("--slice-features", f"{name!r} is not a categorical feature; choose from {allowed}")
    return names


def build_eval_config(label: str, prediction_key: str, slice_features: list[str], has_baseline: bool,
                      mae_upper_bound: float | None, max_mae_increase: float | None):
    """A TFMA EvalConfig (tfma 0.52 does not export EvalConfig at the top level: use the proto)."""
    from tensorflow_model_analysis.proto import config_pb2

    config = config_pb2.EvalConfig()
    models = [CANDIDATE, BASELINE] if has_baseline else [CANDIDATE]
    for name in models:
        # TFMA feeds serialized tf.Examples: the export's `from_examples` signature takes them.
        config.model_specs.add(name=name, label_key=label, prediction_key=prediction_key,
                               signature_name="from_examples", is_baseline=name == BASELINE)
    config.slicing_specs.add()  # overall
    for feature in slice_features:
        config.slicing_specs.add(feature_keys=[feature])

    metrics = config.metrics_specs.add()
    metrics.model_names.extend(models)
    for key in ("example_count", "mse"):
        metrics.metrics.add(class_name=_METRICS[key])
    mae = metrics.metrics.add(class_name=_METRICS["mae"])
    threshold = config_pb2.MetricThreshold()
    if mae_upper_bound is not None:
        threshold.value_threshold.upper_bound.value = mae_upper_bound
    if has_baseline and max_mae_increase is not None:
        threshold.change_threshold.direction = config_pb2.MetricDirection.LOWER_IS_BETTER
        threshold.change_threshold.absolute.value = max_mae_increase
    if threshold.ByteSize():
        gate = mae.per_slice_thresholds.add(threshold=threshold)
        gate.slicing_specs.add()  # the overall slice only
    return config


def _run_tfma(config, model_path: str, baseline_path: str | None, eval_data: str, output_path: str) -> dict:
    import tensorflow_model_analysis as tfma

    paths = {CANDIDATE: model_path, BASELINE: baseline_path}
    shared_models = [tfma.default_eval_shared_model(eval_saved_model_path=paths[spec.name], eval_config=config,
                                                     model_name=spec.name)
                     for spec in config.model_specs]
    tfma.run_model_analysis(eval_shared_model=shared_models if len(shared_models) > 1 else shared_models[0],
                            eval_config=config, data_location=eval_data, output_path=output_path)

    # With one model TFMA leaves metric keys without a model name: look it up by name only with two.
    candidate = _metrics_by_slice(tfma.load_eval_result(output_path, model_name=CANDIDATE if baseline_path else None))
    baseline = _metrics_by_slice(tfma.load_eval_result(output_path, model_name=BASELINE)) if baseline_path else {}
    if OVERALL not in candidate or (baseline_path and OVERALL not in baseline):
        raise StepFailed(f"TFMA wrote no overall metrics to {output_path}")
    slices = []
    for key, metrics in candidate.items():
        if key == OVERALL:
            continue
        feature, value = key
        row = {"feature": feature, "value": value, **metrics}
        if key in baseline:
            row["baseline_mae"] = baseline[key]["mae"]
        slices.append(row)
    slices.sort(key=lambda r: (r["feature"], -(r["example_count"] or 0), r["value"]))

    validation = tfma.load_validation_result(output_path)
    return {
        "validation_ok": bool(validation.validation_ok),
        "failed_thresholds": _failed_thresholds(validation),
        "overall": candidate[OVERALL],
        "slices": slices,
        "baseline": {"overall": baseline[OVERALL]} if OVERALL in baseline else None,
    }


def verdict(validation_ok: bool, failed: list[dict], overall: dict, gated: bool,
            has_baseline: bool) -> tuple[bool, list[str]]:
    """(blessed, reasons): TFMA's validation where a gate applies, finite metrics always.

    Without any gate TFMA reports `validation_ok: false` with no failure listed, so its
    answer is not used then: a first model with finite metrics is blessed.
    """
    not_finite = [name for name in ("mae", "mse")
                  if not (isinstance(overall.get(name), (int, float)) and math.isfinite(overall[name]))]
    if not_finite:
        values = ", ".join(f"{name}={overall.get(name)}" for name in not_finite)
        return False, [f"overall metrics are not finite ({values}): the model cannot be served"]
    if not gated:
        why = ("no model serving yet and no MAE bound: a first model with finite metrics is blessed"
               if not has_baseline else "no MAE bound and no allowed increase over the model serving: nothing to gate on")
        return True, [why]
    if validation_ok:
        return True, ["passes every threshold"]
    reasons = [_failure_reason(f) for f in failed]
    return False, reasons or ["TFMA's validation failed without naming a threshold (see validations in the eval dir)"]


def _failure_reason(failure: dict) -> str:
    if failure["metric"].endswith("_diff"):
        return (f"{failure['value']:+.6g} {failure['metric'].removesuffix('_diff')} on {failure['slice']}: worse than "
                f"the model serving by more than allowed ({failure['threshold']})")
    return f"{failure['metric']} on {failure['slice']} = {failure['value']:.6g}, required {failure['threshold']}"


def _metrics_by_slice(eval_result) -> dict:
    """{OVERALL | (feature, value): {example_count, mae, mse}} from a TFMA EvalResult."""
    by_slice = {}
    for slice_key, outputs in eval_result.slicing_metrics:
        values = outputs.get("", {}).get("", {})
        metrics = {key: _number(values.get(name)) for key, name in _TFMA_NAMES.items()}
        if metrics["example_count"] is not None:
            metrics["example_count"] = int(metrics["example_count"])
        by_slice[_slice_name(slice_key)] = metrics
    return by_slice


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


def _failed_thresholds(validation) -> list[dict]:
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
                "threshold": _describe_threshold(failure.metric_threshold),
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


def _describe_threshold(threshold) -> str:
    parts = []
    if threshold.HasField("value_threshold"):
        bounds = threshold.value_threshold
        if bounds.HasField("upper_bound"):
            parts.append(f"<= {bounds.upper_bound.value:g}")
        if bounds.HasField("lower_bound"):
            parts.append(f">= {bounds.lower_bound.value:g}")
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        if change.HasField("absolute"):
            parts.append(f"candidate - baseline <= {change.absolute.value:g}")
        if change.HasField("relative"):
            parts.append(f"(candidate - baseline) / baseline <= {change.relative.value:g}")
    return " and ".join(parts) or "unknown threshold"
