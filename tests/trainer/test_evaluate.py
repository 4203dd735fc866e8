"""Step `evaluate`: TFMA metrics and slices, value and change thresholds, the HTML report."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import TINY_HYPERPARAMETERS, run_step


def evaluate(prepared, model_path: str, rank: int, *flags: str) -> dict:
    code, result = run_step("evaluate", prepared["run_root"], "--rank", str(rank), "--model-path", model_path, *flags)
    assert code == 0, "evaluate failed"
    return result


@pytest.fixture(scope="module")
def weak_model(prepared) -> str:
    """A model that barely trained (tiny learning rate, one epoch): clearly worse than `trained`."""
    code, result = run_step("train", prepared["run_root"], "--rank", "1", "--epochs", "1", "--seed", "1",
                            "--hyperparameters", json.dumps({**TINY_HYPERPARAMETERS, "learning_rate": 1e-6}))
    assert code == 0
    return result["model_path"]


@pytest.fixture(scope="module")
def loose(prepared, trained) -> dict:
    return evaluate(prepared, trained["model_path"], 0, "--mae-upper-bound", "1e9")


def test_blessed_with_a_loose_bound(loose, prepared, trained):
    assert loose["blessed"] is True and loose["failed_thresholds"] == []
    assert loose["rank"] == 0 and loose["model_path"] == trained["model_path"]
    overall = loose["overall"]
    assert overall["example_count"] == prepared["result"]["eval_examples"]
    # TFMA through serving_default agrees with Keras' own evaluation of the same weights.
    assert overall["mae"] == pytest.approx(trained["metrics"]["mae"], rel=1e-3)
    assert overall["mse"] == pytest.approx(trained["metrics"]["loss"], rel=1e-3)
    assert loose["baseline"] is None

    from trainer import featurespec

    spec = featurespec.load(prepared["result"]["feature_spec"])
    assert {s["feature"] for s in loose["slices"]} == set(spec.categorical)
    for feature in spec.categorical:
        rows = [s for s in loose["slices"] if s["feature"] == feature]
        assert sum(s["example_count"] for s in rows) == overall["example_count"]  # every row in one slice
        assert {s["value"] for s in rows} <= set(spec.categorical[feature])
        assert all(s["mae"] >= 0 and s["mse"] >= 0 for s in rows)

    eval_dir = Path(prepared["run_root"]) / "eval" / "0"
    assert loose["report"] == str(eval_dir / "report.html")
    assert (eval_dir / "eval_config.json").is_file() and list(eval_dir.glob("metrics-*"))
    assert json.loads((eval_dir / "evaluation.json").read_text())["blessed"] is True


def test_refused_with_a_tiny_bound(prepared, trained):
    result = evaluate(prepared, trained["model_path"], 2, "--mae-upper-bound", "1")
    assert result["blessed"] is False
    assert result["failed_thresholds"] == [{
        "metric": "mean_absolute_error", "model": "candidate", "slice": "overall",
        "threshold": "<= 1", "value": pytest.approx(result["overall"]["mae"]),
    }]
    report = Path(result["report"]).read_text()
    assert "NOT BLESSED" in report and "mean_absolute_error" in report


def test_change_threshold_against_the_baseline(prepared, trained, weak_model):
    # The weak candidate is far worse than the serving (baseline) model: refused.
    worse = evaluate(prepared, weak_model, 3, "--baseline-model-path", trained["model_path"],
                     "--max-mae-increase", "0")
    assert worse["blessed"] is False
    assert worse["overall"]["mae"] > worse["baseline"]["overall"]["mae"]
    [failure] = worse["failed_thresholds"]
    assert failure["metric"] == "mean_absolute_error_diff" and failure["slice"] == "overall"
    assert failure["value"] == pytest.approx(worse["overall"]["mae"] - worse["baseline"]["overall"]["mae"], rel=1e-4)
    assert all("baseline_mae" in s for s in worse["slices"])

    # The good model against the weak one in production: blessed, even with no slack.
    better = evaluate(prepared, trained["model_path"], 4, "--baseline-model-path", weak_model,
                      "--max-mae-increase", "0", "--mae-upper-bound", "1e9", "--slice-features", "cut")
    assert better["blessed"] is True and better["failed_thresholds"] == []
    assert {s["feature"] for s in better["slices"]} == {"cut"}
    assert better["baseline"]["overall"]["mae"] == pytest.approx(worse["overall"]["mae"], rel=1e-6)


def test_a_user_model_against_the_serving_baseline(prepared, trained_wide_and_deep, weak_model):
    """TFMA takes a user model (the wide-and-deep example) through the same signature and gate."""
    result = evaluate(prepared, trained_wide_and_deep["model_path"], 5, "--baseline-model-path", weak_model,
                      "--max-mae-increase", "0", "--mae-upper-bound", "1e9")
    assert result["overall"]["example_count"] == prepared["result"]["eval_examples"]
    assert result["overall"]["mae"] == pytest.approx(trained_wide_and_deep["metrics"]["mae"], rel=1e-3)
    assert result["overall"]["mae"] < result["baseline"]["overall"]["mae"]
    assert result["blessed"] is True and result["failed_thresholds"] == []
    assert all("baseline_mae" in s for s in result["slices"])

    # and refused against a baseline it does not beat, with the reason
    refused = evaluate(prepared, weak_model, 6, "--baseline-model-path", trained_wide_and_deep["model_path"],
                       "--max-mae-increase", "0")
    assert refused["blessed"] is False
    assert [f["metric"] for f in refused["failed_thresholds"]] == ["mean_absolute_error_diff"]


def test_report_is_self_contained_with_the_slice_table(loose):
    html = Path(loose["report"]).read_text()
    assert "BLESSED" in html and "NOT BLESSED" not in html
    assert "<svg" in html and "<style>" in html
    # No external assets: nothing fetched, no script.
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert not re.search(r"""(src|href)\s*=|url\(""", html)
    table = html[html.index("<table class='slices'>"):]
    for s in loose["slices"]:
        assert f"<td class='text'>{s['value']}</td>" in table
    assert f"{loose['overall']['example_count']:,}" in html


@pytest.mark.parametrize("flags, culprit", [
    (["--mae-upper-bound", "-1"], "--mae-upper-bound"),
    (["--max-mae-increase", "-0.5"], "--max-mae-increase"),
    # the contract's ranges (tune_contract.steps), enforced before the step runs
    (["--max-mae-increase", "nan"], "--max-mae-increase"),
    (["--auc-lower-bound", "0"], "--auc-lower-bound"),
    (["--max-auc-decrease", "1.5"], "--max-auc-decrease"),
    (["--slice-features", "carat"], "--slice-features"),
    (["--baseline-model-path", "/nonexistent/model"], "--baseline-model-path"),
])
def test_bad_evaluation_input_exits_2(flags, culprit, prepared, trained, capsys):
    code, result = run_step("evaluate", prepared["run_root"], "--rank", "8", "--model-path", trained["model_path"],
                            *flags)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and result is None and message.startswith(f"error: {culprit}:"), message
    assert not (Path(prepared["run_root"]) / "eval" / "8").exists()


def test_a_first_model_without_thresholds_is_blessed_with_its_reason(prepared, trained):
    # The trigger form's defaults: no MAE bound, max_mae_increase 0, nothing serving yet.
    result = evaluate(prepared, trained["model_path"], 5, "--max-mae-increase", "0")
    assert result["blessed"] is True and result["failed_thresholds"] == []
    assert result["reasons"] and "no model serving" in result["reasons"][0]
    report = Path(result["report"]).read_text()
    assert "BLESSED" in report and "NOT BLESSED" not in report and "no model serving" in report


def test_every_refusal_carries_a_reason_in_the_result_json_and_report(prepared, trained, weak_model):
    worse = evaluate(prepared, weak_model, 6, "--baseline-model-path", trained["model_path"],
                     "--max-mae-increase", "0")
    assert worse["blessed"] is False and worse["reasons"]
    assert "worse than the model serving" in worse["reasons"][0]
    stored = json.loads((Path(prepared["run_root"]) / "eval" / "6" / "evaluation.json").read_text())
    assert stored["reasons"] == worse["reasons"]
    from html import escape

    assert escape(worse["reasons"][0]) in Path(worse["report"]).read_text()


@pytest.mark.parametrize("overall, blessed, reason", [
    ({"mae": 1.0, "mse": 2.0}, True, "no model serving"),
    ({"mae": float("nan"), "mse": 2.0}, False, "not finite"),
    ({"mae": None, "mse": 2.0}, False, "not finite"),
    ({"mae": 1.0, "mse": float("inf")}, False, "not finite"),
])
def test_verdict_without_a_gate_depends_only_on_finite_metrics(overall, blessed, reason):
    from trainer.evaluation.verdict import verdict

    decided, reasons = verdict(validation_ok=False, failed=[], overall=overall, gated=False, has_baseline=False)
    assert decided is blessed and reason in reasons[0]


def test_verdict_never_refuses_without_a_reason():
    from trainer.evaluation.verdict import verdict

    # TFMA said no but listed nothing: the refusal still says so.
    decided, reasons = verdict(validation_ok=False, failed=[], overall={"mae": 1.0, "mse": 1.0}, gated=True,
                               has_baseline=True)
    assert decided is False and reasons
