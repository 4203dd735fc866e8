"""Step `evaluate` (see trainer.evaluation): the candidate's inputs checked, TFMA run on the eval
split, the verdict, and `{run_root}/eval/{rank}/` written whole."""
from __future__ import annotations

import json
import time

from tune_contract import layout
from tune_contract.results import EvaluateResult, finite
from tune_contract.steps import EvaluateArgs

from trainer import data, storage
from trainer.errors import BadInput
from trainer.evaluation import config, extract
from trainer.evaluation.config import BASELINE, CANDIDATE
from trainer.evaluation.verdict import HEADLINE, verdict


def run(args: EvaluateArgs) -> EvaluateResult:
    from trainer import savedmodel

    data_dir = data.data_dir(args.run_root)
    spec = data.load_feature_spec(data_dir)
    for flag, path in (("--model-path", args.model_path), ("--baseline-model-path", args.baseline_model_path)):
        if path and not savedmodel.is_complete(path):
            raise BadInput(flag, f"no SavedModel at {path}")
    slice_features = config.slice_features(args.slice_features, spec)
    eval_data = data.split_path(data_dir, "eval")
    if not storage.exists(eval_data):
        raise BadInput("--run-root", f"no prepared data: {eval_data} not found (run the prepare step first)")

    started = time.monotonic()
    has_baseline = bool(args.baseline_model_path)
    eval_config = config.eval_config(args, spec, slice_features)
    out = layout.eval_dir(args.run_root, args.rank)
    storage.remove_stale_temps(out)
    tmp = storage.temp_name(out)
    try:
        analysis = _run_tfma(eval_config, args, eval_data, tmp, spec)
        thresholds = config.thresholds(args, spec.task)
        gated = any(value is not None for value in thresholds.values())
        blessed, reasons = verdict(analysis["validation_ok"], analysis["failed_thresholds"], analysis["overall"],
                                   gated=gated, has_baseline=has_baseline, task=spec.task)
        headline, direction = HEADLINE[spec.task]
        result: EvaluateResult = {
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
            "thresholds_not_applicable": config.thresholds_not_applicable(args, spec.task),
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


def _run_tfma(eval_config, args: EvaluateArgs, eval_data: str, output_path: str, spec) -> dict:
    """TFMA over the candidate (and the baseline), its output read back (`extract.analysis`)."""
    import tensorflow_model_analysis as tfma

    paths = {CANDIDATE: args.model_path, BASELINE: args.baseline_model_path}
    shared_models = [tfma.default_eval_shared_model(eval_saved_model_path=paths[model.name], eval_config=eval_config,
                                                     model_name=model.name)
                     for model in eval_config.model_specs]
    tfma.run_model_analysis(eval_shared_model=shared_models if len(shared_models) > 1 else shared_models[0],
                            eval_config=eval_config, data_location=eval_data, output_path=output_path)
    return extract.analysis(output_path, spec, with_baseline=bool(args.baseline_model_path))
