"""The evaluation report: one self-contained HTML page (inline CSS and SVG, no external assets),
so it opens from a bucket, an Airflow link or an e-mail attachment alike."""
from __future__ import annotations

from html import escape

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#1f2933;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.muted{color:#616e7c}.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.verdict{border-radius:6px;padding:12px 16px;margin:16px 0;font-weight:600}
.blessed{background:#e3f9e5;border:1px solid #31a05f;color:#0e5a2c}
.refused{background:#ffe3e3;border:1px solid #d64545;color:#8a1c1c}
.verdict ul{margin:6px 0 0;font-weight:400}
table{border-collapse:collapse;width:100%;margin:4px 0}
th,td{border-bottom:1px solid #e4e7eb;padding:5px 8px;text-align:right}
th{background:#f5f7fa;font-weight:600}th:first-child,td:first-child,td.text{text-align:left}
.worse{color:#b42318}.better{color:#067647}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
"""
_CANDIDATE_COLOR, _BASELINE_COLOR, _BOUND_COLOR = "#3e7bfa", "#9aa5b1", "#d64545"


_CLASSIFIER_ROWS = (("example_count", "examples"), ("auc", "AUC"), ("accuracy", "accuracy"),
                    ("precision", "precision"), ("recall", "recall"), ("calibration", "calibration (mean prediction / mean label)"))
_HIGHER_IS_BETTER = {"auc", "accuracy", "precision", "recall"}


def render_report(result: dict, label: str) -> str:
    if result.get("task") in ("binary", "multiclass"):
        return _classifier_report(result, label)
    baseline_overall = (result.get("baseline") or {}).get("overall")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation of rank {escape(str(result['rank']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation of candidate rank {escape(str(result['rank']))}</h1>",
        f"<div class='muted'>label <b>{escape(label)}</b> · candidate <span class='mono'>{escape(result['model_path'])}</span>",
    ]
    if result.get("baseline_model_path"):
        parts.append(f"<br>baseline (serving now) <span class='mono'>{escape(result['baseline_model_path'])}</span>")
    parts.append("</div>")
    parts.append(_verdict(result))
    parts.append("<h2>Overall</h2>")
    parts.append(_overall_table(result["overall"], baseline_overall))
    parts.append("<h2>Mean absolute error per slice</h2>")
    parts.append(_slice_chart(result, baseline_overall is not None))
    parts.append("<h2>Slices</h2>")
    parts.append(_slice_table(result["slices"], baseline_overall is not None))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}g}" if abs(value) < 1e4 else f"{value:,.1f}"


def _delta(candidate, baseline, higher_is_better: bool = False) -> str:
    if candidate is None or baseline is None:
        return "<td>–</td>"
    diff = candidate - baseline
    worse = diff < 0 if higher_is_better else diff > 0
    css = "worse" if worse else "better" if diff != 0 else ""
    return f"<td class='{css}'>{'+' if diff > 0 else ''}{_fmt(diff)}</td>"


def _verdict(result: dict) -> str:
    thresholds = result.get("thresholds") or {}
    configured = [f"overall MAE ≤ {_fmt(thresholds['mae_upper_bound'])}"] if thresholds.get("mae_upper_bound") is not None else []
    if thresholds.get("auc_lower_bound") is not None:
        configured.append(f"overall AUC ≥ {_fmt(thresholds['auc_lower_bound'])}")
    if thresholds.get("accuracy_lower_bound") is not None:
        configured.append(f"overall accuracy ≥ {_fmt(thresholds['accuracy_lower_bound'])}")
    if thresholds.get("max_auc_decrease") is not None:
        configured.append(f"overall AUC ≥ baseline AUC − {_fmt(thresholds['max_auc_decrease'])}")
    if thresholds.get("max_mae_increase") is not None:
        configured.append(f"overall MAE ≤ baseline MAE + {_fmt(thresholds['max_mae_increase'])}")
    checked = "Thresholds: " + ("; ".join(configured) if configured else "none apply")
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in result.get("reasons") or [])
    if result["blessed"]:
        return f"<div class='verdict blessed'>BLESSED<ul>{reasons}<li>{escape(checked)}</li></ul></div>"
    return f"<div class='verdict refused'>NOT BLESSED<ul>{reasons}<li>{escape(checked)}</li></ul></div>"


def _classifier_report(result: dict, label: str) -> str:
    """A classifier's page: the verdict, AUC/accuracy/precision/recall/calibration overall (with
    the baseline's) and per slice, calibration per class or the calibration plot's buckets."""
    baseline = (result.get("baseline") or {}).get("overall")
    classes = result.get("label_vocabulary") or []
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation of rank {escape(str(result['rank']))}</title><style>{_CSS}</style></head><body>",
        f"<h1>Evaluation of candidate rank {escape(str(result['rank']))}</h1>",
        f"<div class='muted'>{escape(result['task'])} classifier of <b>{escape(label)}</b> "
        f"(classes: {escape(', '.join(classes))}) · candidate <span class='mono'>{escape(result['model_path'])}</span>",
    ]
    if result.get("baseline_model_path"):
        parts.append(f"<br>baseline (serving now) <span class='mono'>{escape(result['baseline_model_path'])}</span>")
    parts.append("</div>")
    parts.append(_verdict(result))
    note = ("positive class " + escape(classes[1]) if result["task"] == "binary" and len(classes) == 2
            else "AUC, precision and recall micro-averaged over the classes (one-vs-rest)")
    parts.append(f"<h2>Overall</h2><p class='muted'>{note}; precision and recall at a 0.5 threshold</p>")
    head = "<tr><th>metric</th><th>candidate</th>" + ("<th>baseline</th><th>change</th>" if baseline else "") + "</tr>"
    rows = []
    for key, name in _CLASSIFIER_ROWS:
        if key not in result["overall"]:
            continue
        row = f"<tr><td>{name}</td><td>{_fmt(result['overall'].get(key))}</td>"
        if baseline:
            row += f"<td>{_fmt(baseline.get(key))}</td>" + _delta(result["overall"].get(key), baseline.get(key),
                                                                   higher_is_better=key in _HIGHER_IS_BETTER)
        rows.append(row + "</tr>")
    parts.append(f"<table>{head}{''.join(rows)}</table>")
    per_class = result["overall"].get("calibration_per_class")
    if per_class:
        parts.append("<h2>Calibration per class</h2><p class='muted'>mean predicted probability / share of the "
                     "class (1 = calibrated)</p><table><tr><th>class</th><th>calibration</th></tr>")
        parts.extend(f"<tr><td class='text'>{escape(classes[int(i)] if int(i) < len(classes) else i)}</td>"
                     f"<td>{_fmt(v)}</td></tr>" for i, v in sorted(per_class.items(), key=lambda kv: int(kv[0])))
        parts.append("</table>")
    plot = result.get("calibration_plot")
    if plot:
        parts.append("<h2>Calibration plot</h2><p class='muted'>examples bucketed by predicted probability: a "
                     "calibrated model's mean label matches its mean prediction in every bucket</p>"
                     "<table><tr><th>predicted</th><th>examples</th><th>mean prediction</th><th>mean label</th></tr>")
        parts.extend(f"<tr><td class='text'>{b['lower']:.1f}–{b['upper']:.1f}</td><td>{_fmt(b['examples'])}</td>"
                     f"<td>{_fmt(b['mean_prediction'])}</td><td>{_fmt(b['mean_label'])}</td></tr>" for b in plot)
        parts.append("</table>")
    parts.append("<h2>Slices</h2>")
    slices = result.get("slices") or []
    if not slices:
        parts.append("<p class='muted'>No slices (no categorical feature to slice by).</p>")
    else:
        keys = [k for k, _ in _CLASSIFIER_ROWS if k != "calibration" or result["task"] == "binary"]
        head = ("<tr><th>feature</th><th>value</th>" + "".join(f"<th>{escape(n.split(' (')[0])}</th>"
                for k, n in _CLASSIFIER_ROWS if k in keys) + ("<th>baseline AUC</th>" if baseline else "") + "</tr>")
        body = []
        for s in slices:
            row = (f"<tr><td class='text'>{escape(s['feature'])}</td><td class='text'>{escape(s['value'])}</td>"
                   + "".join(f"<td>{_fmt(s.get(k))}</td>" for k in keys))
            if baseline:
                row += f"<td>{_fmt(s.get('baseline_auc'))}</td>"
            body.append(row + "</tr>")
        parts.append(f"<table class='slices'>{head}{''.join(body)}</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _overall_table(overall: dict, baseline: dict | None) -> str:
    head = "<tr><th>metric</th><th>candidate</th>" + ("<th>baseline</th><th>change</th>" if baseline else "") + "</tr>"
    rows = []
    for key, name in (("example_count", "examples"), ("mae", "MAE"), ("mse", "MSE")):
        row = f"<tr><td>{name}</td><td>{_fmt(overall.get(key))}</td>"
        if baseline:
            row += f"<td>{_fmt(baseline.get(key))}</td>" + _delta(overall.get(key), baseline.get(key))
        rows.append(row + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _slice_table(slices: list[dict], with_baseline: bool) -> str:
    if not slices:
        return "<p class='muted'>No slices (no categorical feature to slice by).</p>"
    head = ("<tr><th>feature</th><th>value</th><th>examples</th><th>MAE</th><th>MSE</th>"
            + ("<th>baseline MAE</th><th>MAE change</th>" if with_baseline else "") + "</tr>")
    rows = []
    for s in slices:
        row = (f"<tr><td class='text'>{escape(s['feature'])}</td><td class='text'>{escape(s['value'])}</td>"
               f"<td>{_fmt(s.get('example_count'))}</td><td>{_fmt(s.get('mae'))}</td><td>{_fmt(s.get('mse'))}</td>")
        if with_baseline:
            row += f"<td>{_fmt(s.get('baseline_mae'))}</td>" + _delta(s.get("mae"), s.get("baseline_mae"))
        rows.append(row + "</tr>")
    return f"<table class='slices'>{head}{''.join(rows)}</table>"


def _slice_chart(result: dict, with_baseline: bool) -> str:
    """Horizontal bars: candidate MAE (and baseline MAE) per slice, the overall first; a red
    dashed line marks the MAE upper bound when one is set."""
    overall = result["overall"]
    rows = [("overall", overall.get("mae"), ((result.get("baseline") or {}).get("overall") or {}).get("mae"))]
    rows += [(f"{s['feature']}={s['value']}", s.get("mae"), s.get("baseline_mae")) for s in result["slices"]]
    bound = (result.get("thresholds") or {}).get("mae_upper_bound")
    values = [v for _, c, b in rows for v in (c, b) if v is not None] + ([bound] if bound else [])
    top = max(values, default=0) or 1.0

    label_w, bar_w, bar_h = 170, 640, 12
    group_h = bar_h * (2 if with_baseline else 1) + 10
    height = group_h * len(rows) + 30
    scale = bar_w / top
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + bar_w + 90}' height='{height}' "
           f"role='img' aria-label='MAE per slice' font-size='12' font-family='system-ui,sans-serif'>"]
    for i, (name, cand, base) in enumerate(rows):
        y = 20 + i * group_h
        out.append(f"<text x='{label_w - 6}' y='{y + bar_h - 2}' text-anchor='end'>{escape(name)}</text>")
        bars = [(cand, _CANDIDATE_COLOR)] + ([(base, _BASELINE_COLOR)] if with_baseline else [])
        for j, (value, color) in enumerate(bars):
            if value is None:
                continue
            by = y + j * bar_h
            out.append(f"<rect x='{label_w}' y='{by}' width='{max(value * scale, 1):.1f}' height='{bar_h - 1}' fill='{color}'>"
                       f"<title>{escape(name)}: {_fmt(value)}</title></rect>")
            out.append(f"<text x='{label_w + value * scale + 4:.1f}' y='{by + bar_h - 2}' fill='#3e4c59'>{_fmt(value)}</text>")
    if bound:
        x = label_w + bound * scale
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='12' y2='{height - 4}' stroke='{_BOUND_COLOR}' stroke-dasharray='4 3'/>")
        out.append(f"<text x='{x:.1f}' y='10' text-anchor='middle' fill='{_BOUND_COLOR}'>bound {_fmt(bound)}</text>")
    out.append("</svg>")
    legend = (f"<div class='legend muted'><span style='background:{_CANDIDATE_COLOR}'></span>candidate"
              + (f"<span style='background:{_BASELINE_COLOR}'></span>baseline" if with_baseline else "") + "</div>")
    return "".join(out) + legend
