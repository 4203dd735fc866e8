"""The evaluation report renders under the artifact viewer's `Content-Security-Policy: sandbox;
default-src 'none'`: it needs no script, loads nothing, and escapes what it quotes."""
from __future__ import annotations

from html.parser import HTMLParser

from trainer.report import render_report

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>"


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.styles = set(), set(), []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        self.styles += [value for name, value in attrs if name == "style"]
        self._in_style = tag == "style"

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def test_the_report_needs_no_script_and_loads_nothing():
    result = {
        "rank": 0, "model_path": f"/runs/{HOSTILE}/model", "blessed": False, "baseline": None,
        "baseline_model_path": None, "thresholds": {"mae_upper_bound": 1.0},
        "overall": {"example_count": 10, "mae": 2.0, "mse": 5.0},
        "slices": [{"feature": "cut", "value": HOSTILE, "example_count": 10, "mae": 2.0, "mse": 5.0}],
        "failed_thresholds": [{"metric": "mean_absolute_error", "slice": "overall", "value": 2.0, "threshold": "<= 1"}],
    }
    page = _Elements()
    page.feed(render_report(result, label=HOSTILE))
    assert not page.tags & {"script", "img", "iframe", "object", "embed", "link", "form", "base"}
    assert not {a for a in page.attributes if a.startswith("on")}, "no event handlers"
    assert not page.attributes & {"src", "href", "action", "srcset", "xlink:href"}, "nothing loaded or linked"
    assert not any("url(" in s or "@import" in s for s in page.styles), "no CSS loads"
