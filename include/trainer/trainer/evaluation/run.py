"""Step `evaluate`: TFMA on the eval split, thresholds, the blessing, and an HTML report.

The candidate (and the baseline — the model serving now — when given) are scored through
their `from_examples` signature on `{run_root}/data/eval.tfrecord`, overall and per value of
each slice feature, with the metrics of the feature spec's task:
- regression: ExampleCount, MAE, MSE;
- binary (the served `probabilities` column of the second class): AUC, accuracy, precision and
  recall at 0.5, calibration (mean prediction / mean label) and a calibration plot;
- multiclass (the served `probabilities`, one per class): accuracy (top-1), and AUC, precision,
  recall micro-averaged one-vs-rest (as the Keras metrics of trainer.heads), calibration per class.
The blessing (`verdict`):
- overall metrics that are not finite (NaN, infinite, missing) never pass;
- regression: `--mae-upper-bound B`: overall MAE <= B; `--max-mae-increase D` (with a
  baseline, the model serving now): overall MAE <= baseline MAE + D;
- classification: `--auc-lower-bound B`: overall AUC >= B; `--accuracy-lower-bound B`;
  `--max-auc-decrease D` (with a baseline): overall AUC >= baseline AUC - D;
- no gate applies (no bound, and no model serving yet or no change allowed): blessed.
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
# our name -> (TFMA class, TFMA's output name) of a classifier's metrics
_CLASSIFIER_METRICS = {"auc": ("AUC", "auc"), "accuracy": ("BinaryAccuracy", "binary_accuracy"),
                       "precision": ("Precision", "precision"), "recall": ("Recall", "recall")}
# the metric a task is judged by (thresholds, the choice between blessed candidates, the summary)
# and the ones that must be finite for a model to be served
HEADLINE = {"regression": ("mae", "min"), "binary": ("auc", "max"), "multiclass": ("accuracy", "max")}
MUST_BE_FINITE = {"regression": ("mae", "mse"), "binary": ("auc", "accuracy"), "multiclass": ("auc", "accuracy")}


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
    has_baseline = bool(args.baseline_model_path)
    if spec.is_classification:
        config = build_classifier_eval_config(spec, slice_features, has_baseline=has_baseline,
                                              auc_lower_bound=args.auc_lower_bound,
                                              accuracy_lower_bound=args.accuracy_lower_bound,
                                              max_auc_decrease=args.max_auc_decrease)
    else:
        config = build_eval_config(spec.label, spec.signature_key(spec.label), slice_features, has_baseline=has_baseline,
                                   mae_upper_bound=args.mae_upper_bound, max_mae_increase=args.max_mae_increase)
    out = eval_dir(args.run_root, args.rank)
    storage.remove_stale_temps(out)
    tmp = storage.temp_name(out)
    try:
        analysis = _run_tfma(config, args.model_path, args.baseline_model_path, eval_data, tmp, spec)
        thresholds = _thresholds(args, spec.task)
        gated = any(value is not None for value in thresholds.values())
        blessed, reasons = verdict(analysis["validation_ok"], analysis["failed_thresholds"], analysis["overall"],
                                   gated=gated, has_baseline=has_baseline, task=spec.task)
        headline, direction = HEADLINE[spec.task]
        result = {
            "rank": args.rank,
            "task": spec.task,
            "label_vocabulary": spec.label_vocabulary,
            # the metric this candidate is judged and chosen by, and which way is better
            "headline": {"metric": headline, "direction": direction, "value": analysis["overall"].get(headline)},
            "model_path": args.model_path,
            "baseline_model_path": args.baseline_model_path,
            "blessed": blessed,
            "reasons": reasons,
            "failed_thresholds": analysis["failed_thresholds"],
            "thresholds": thresholds,
            "thresholds_not_applicable": thresholds_not_applicable(args, spec.task),
            "overall": analysis["overall"],
            "slices": analysis["slices"],
            "baseline": analysis["baseline"],
            "eval_dir": out,
            "report": storage.join(out, "report.html"),
        }
        from trainer.report import render_report

        if analysis.get("calibration_plot"):
            result["calibration_plot"] = analysis["calibration_plot"]
        storage.write_text(storage.join(tmp, "report.html"), render_report(result, label=spec.label))
        result["seconds"] = round(time.monotonic() - started, 1)
        storage.write_text(storage.join(tmp, layout.EVALUATION_FILE), json.dumps(finite(result), indent=2) + "\n")
        storage.replace_dir(tmp, out)
    except BaseException:
        storage.rmtree(tmp)
        raise
    return result


_CLASSIFIER_FLAGS = ("auc_lower_bound", "accuracy_lower_bound", "max_auc_decrease")
_REGRESSION_FLAGS = ("mae_upper_bound", "max_mae_increase")


def _thresholds(args, task: str) -> dict:
    """The gates that apply to this evaluation (a change gate only with a baseline)."""
    names = _CLASSIFIER_FLAGS if task in ("binary", "multiclass") else _REGRESSION_FLAGS
    change = {"max_auc_decrease", "max_mae_increase"}
    return {name: (getattr(args, name) if args.baseline_model_path or name not in change else None) for name in names}


def thresholds_not_applicable(args, task: str) -> dict:
    """The other task's gates that were given: not applied, and listed in the result. A run
    whose task is left to `prepare` passes both families (validate_params refuses a bound of
    the wrong family when the task is known before)."""
    wrong = _REGRESSION_FLAGS if task in ("binary", "multiclass") else _CLASSIFIER_FLAGS
    return {name: getattr(args, name) for name in wrong if getattr(args, name) is not None}


def _check_flags(args) -> None:
    if args.rank < 0:
        raise BadInput("--rank", f"must be >= 0, got {args.rank}")
    for name in ("auc_lower_bound", "accuracy_lower_bound"):
        bound = getattr(args, name)
        if bound is not None and not (math.isfinite(bound) and 0 < bound <= 1):
            raise BadInput("--" + name.replace("_", "-"), f"must be a number in (0, 1], got {bound}")
    decrease = args.max_auc_decrease
    if decrease is not None and not (math.isfinite(decrease) and 0 <= decrease <= 1):
        raise BadInput("--max-auc-decrease", f"must be a number in [0, 1], got {decrease}")
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


def build_classifier_eval_config(spec, slice_features: list[str], has_baseline: bool,
                                 auc_lower_bound: float | None = None, accuracy_lower_bound: float | None = None,
                                 max_auc_decrease: float | None = None):
    """TFMA on a classifier's served `probabilities` against the class index label.

    binary: every metric on the second class's column (TFMA binarization, class id 1: the
    column the sigmoid predicts); without it TFMA would pool both columns. multiclass: AUC,
    precision and recall micro-averaged over the classes; accuracy is top-1 precision (one
    label per example); calibration per class (pooled it is 1 by construction: each
    example's probabilities sum to 1)."""
    from tensorflow_model_analysis.proto import config_pb2

    from trainer.savedmodel import PROBABILITIES

    config = config_pb2.EvalConfig()
    models = [CANDIDATE, BASELINE] if has_baseline else [CANDIDATE]
    for name in models:
        config.model_specs.add(name=name, label_key=spec.label, prediction_key=PROBABILITIES,
                               signature_name="from_examples", is_baseline=name == BASELINE)
    config.slicing_specs.add()
    for feature in slice_features:
        config.slicing_specs.add(feature_keys=[feature])

    counts = config.metrics_specs.add()
    counts.model_names.extend(models)
    counts.metrics.add(class_name="ExampleCount")

    gated = config.metrics_specs.add()
    gated.model_names.extend(models)
    if spec.task == "binary":
        gated.binarize.class_ids.values.append(1)
        for metric, (class_name, _) in _CLASSIFIER_METRICS.items():
            gated.metrics.add(class_name=class_name)
        gated.metrics.add(class_name="Calibration")
        gated.metrics.add(class_name="CalibrationPlot", config='{"num_buckets": 10}')
        accuracy_metric = "BinaryAccuracy"
    else:
        gated.aggregate.micro_average = True
        for class_name in ("AUC", "Precision", "Recall"):
            gated.metrics.add(class_name=class_name)
        # accuracy on the class index label against the probabilities (a Keras metric run by
        # TFMA: a top-1 Precision would be keyed by its top_k, which TFMA's thresholds never find)
        accuracy_spec = config.metrics_specs.add()
        accuracy_spec.model_names.extend(models)
        accuracy_spec.metrics.add(class_name="SparseCategoricalAccuracy", config='{"name": "accuracy"}')
        accuracy_metric = "SparseCategoricalAccuracy"
        per_class = config.metrics_specs.add()
        per_class.model_names.extend(models)
        per_class.binarize.class_ids.values.extend(range(spec.num_classes))
        per_class.metrics.add(class_name="Calibration")

    def gate(class_name: str, threshold) -> None:
        metric = next(m for spec_ in config.metrics_specs for m in spec_.metrics if m.class_name == class_name)
        per_slice = metric.per_slice_thresholds.add(threshold=threshold)
        per_slice.slicing_specs.add()  # the overall slice only

    auc = config_pb2.MetricThreshold()
    if auc_lower_bound is not None:
        auc.value_threshold.lower_bound.value = auc_lower_bound
    if has_baseline and max_auc_decrease is not None:
        auc.change_threshold.direction = config_pb2.MetricDirection.HIGHER_IS_BETTER
        auc.change_threshold.absolute.value = -max_auc_decrease  # candidate - baseline >= -D
    if auc.ByteSize():
        gate("AUC", auc)
    if accuracy_lower_bound is not None:
        accuracy = config_pb2.MetricThreshold()
        accuracy.value_threshold.lower_bound.value = accuracy_lower_bound
        gate(accuracy_metric, accuracy)
    return config


def _run_tfma(config, model_path: str, baseline_path: str | None, eval_data: str, output_path: str,
              spec=None) -> dict:
    import tensorflow_model_analysis as tfma

    paths = {CANDIDATE: model_path, BASELINE: baseline_path}
    shared_models = [tfma.default_eval_shared_model(eval_saved_model_path=paths[spec.name], eval_config=config,
                                                     model_name=spec.name)
                     for spec in config.model_specs]
    tfma.run_model_analysis(eval_shared_model=shared_models if len(shared_models) > 1 else shared_models[0],
                            eval_config=config, data_location=eval_data, output_path=output_path)

    # With one model TFMA leaves metric keys without a model name: look it up by name only with two.
    candidate_result = tfma.load_eval_result(output_path, model_name=CANDIDATE if baseline_path else None)
    by_slice = _metrics_by_slice if spec is None or not spec.is_classification else _classifier_metrics_by_slice
    candidate = by_slice(candidate_result)
    baseline = by_slice(tfma.load_eval_result(output_path, model_name=BASELINE)) if baseline_path else {}
    headline = HEADLINE[spec.task if spec is not None else "regression"][0]
    if OVERALL not in candidate or (baseline_path and OVERALL not in baseline):
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
        "calibration_plot": _calibration_plot(output_path, bool(baseline_path)) if spec is not None
        and spec.task == "binary" else None,
        "validation_ok": bool(validation.validation_ok),
        "failed_thresholds": _failed_thresholds(validation),
        "overall": candidate[OVERALL],
        "slices": slices,
        "baseline": {"overall": baseline[OVERALL]} if OVERALL in baseline else None,
    }


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
                   if not has_baseline else "no MAE bound and no allowed increase over the model serving: nothing to gate on")
        else:
            why = ("no model serving yet and no AUC or accuracy bound: a first model with finite metrics is blessed"
                   if not has_baseline else "no AUC or accuracy bound and no allowed AUC decrease: nothing to gate on")
        return True, [why]
    if validation_ok:
        return True, ["passes every threshold"]
    reasons = [_failure_reason(f) for f in failed]
    return False, reasons or ["TFMA's validation failed without naming a threshold (see validations in the eval dir)"]


def _failure_reason(failure: dict) -> str:
    # a HIGHER_IS_BETTER change threshold reads "candidate - baseline >= -D" (see _describe_threshold)
    if failure["metric"].endswith("_diff") and "baseline >=" in failure["threshold"]:
        return (f"{failure['value']:+.6g} {failure['metric'].removesuffix('_diff')} on {failure['slice']}: lower than "
                f"the model serving by more than allowed ({failure['threshold']})")
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


def _classifier_metrics_by_slice(eval_result) -> dict:
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


def _calibration_plot(output_path: str, with_baseline: bool) -> list[dict] | None:
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
        from tensorflow_model_analysis.proto import config_pb2

        op = ">=" if change.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER else "<="
        if change.HasField("absolute"):
            parts.append(f"candidate - baseline {op} {change.absolute.value:g}")
        if change.HasField("relative"):
            parts.append(f"(candidate - baseline) / baseline {op} {change.relative.value:g}")
    return " and ".join(parts) or "unknown threshold"
