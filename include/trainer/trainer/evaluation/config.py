"""The evaluate step's flags as TFMA's EvalConfig: the models (candidate, and the baseline
serving now), the slices, the task's metrics, and the gates that apply."""
from __future__ import annotations

from typing import TYPE_CHECKING

from tune_contract.steps import EvaluateArgs

from trainer.errors import BadInput

if TYPE_CHECKING:
    from trainer.featurespec import FeatureSpec

CANDIDATE, BASELINE = "candidate", "baseline"
_METRICS = {"example_count": "ExampleCount", "mae": "MeanAbsoluteError", "mse": "MeanSquaredError"}
# our name -> (TFMA class, TFMA's output name) of a classifier's metrics
_CLASSIFIER_METRICS = {"auc": ("AUC", "auc"), "accuracy": ("BinaryAccuracy", "binary_accuracy"),
                      "precision": ("Precision", "precision"), "recall": ("Recall", "recall")}
_CLASSIFIER_FLAGS = ("auc_lower_bound", "accuracy_lower_bound", "max_auc_decrease")
_REGRESSION_FLAGS = ("mae_upper_bound", "max_mae_increase")


def slice_features(value: str | None, spec: FeatureSpec) -> list[str]:
    """`--slice-features`: all categorical features by default, '' none."""
    if value is None:
        return list(spec.categorical)
    names = [name.strip() for name in value.split(",") if name.strip()]
    for name in names:
        if not spec.is_categorical(name):
            allowed = ", ".join(spec.categorical) or "(none: the spec has no categorical feature)"
            raise BadInput("--slice-features", f"{name!r} is not a categorical feature; choose from {allowed}")
    return names


def thresholds(args: EvaluateArgs, task: str) -> dict:
    """The gates that apply to this evaluation (a change gate only with a baseline)."""
    names = _CLASSIFIER_FLAGS if task in ("binary", "multiclass") else _REGRESSION_FLAGS
    change = {"max_auc_decrease", "max_mae_increase"}
    return {name: (getattr(args, name) if args.baseline_model_path or name not in change else None) for name in names}


def thresholds_not_applicable(args: EvaluateArgs, task: str) -> dict:
    """The other task's gates that were given: not applied, and listed in the result. A run
    whose task is left to `prepare` passes both families (validate_params refuses a bound of
    the wrong family when the task is known before)."""
    wrong = _REGRESSION_FLAGS if task in ("binary", "multiclass") else _CLASSIFIER_FLAGS
    return {name: getattr(args, name) for name in wrong if getattr(args, name) is not None}


def eval_config(args: EvaluateArgs, spec: FeatureSpec, slices: list[str]):
    """The EvalConfig of this evaluation: the task's metrics, and its gates."""
    has_baseline = bool(args.baseline_model_path)
    if spec.is_classification:
        return build_classifier_eval_config(spec, slices, has_baseline=has_baseline,
                                            auc_lower_bound=args.auc_lower_bound,
                                            accuracy_lower_bound=args.accuracy_lower_bound,
                                            max_auc_decrease=args.max_auc_decrease)
    return build_eval_config(spec.label, spec.signature_key(spec.label), slices, has_baseline=has_baseline,
                             mae_upper_bound=args.mae_upper_bound, max_mae_increase=args.max_mae_increase)


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
