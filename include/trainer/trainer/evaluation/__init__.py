"""Step `evaluate`: TFMA on the eval split, thresholds, the blessing, and an HTML report.

`trainer.evaluation.run.run(args: EvaluateArgs) -> EvaluateResult`, over:
    config    the flags as TFMA's EvalConfig: models, slices, metrics, and the gates that apply
    extract   TFMA's output as the result's metrics (overall, per slice, calibration) and failures
    verdict   the blessing and its reasons

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
