"""Issue 29: a stale verdict must not replace a better serving model, and a retried deploy must
not publish the same candidate again (tune_serve.serving.deploy_decision, one row per rule)."""
from __future__ import annotations

import pytest

from tune_serve.serving.deploy_decision import ALREADY_PUBLISHED, PUBLISH, REFUSED, decide, version_of

ROOT = "/srv/models/diamonds"
RUN_B = {"run_id": "run-b", "rank": 1, "fingerprint": "fb"}


def _candidate(judged_against, **identity):
    return {**RUN_B, **identity, "judged_against": judged_against}


@pytest.mark.parametrize("case,candidate,serving,published,expected", [
    ("judged against what still serves", _candidate(f"{ROOT}/1"), f"{ROOT}/1", {1: {"run_id": "run-a"}},
     (PUBLISH, None, "judged against v1, which still serves")),
    ("a first version, nothing serving", _candidate(None), None, {},
     (PUBLISH, None, "judged when no version served, and none serves")),
    ("the clear of a later run's deploy: its candidate is v2, serving", _candidate(f"{ROOT}/1"), f"{ROOT}/2",
     {1: {"run_id": "run-a", "rank": 0, "fingerprint": "fa"}, 2: RUN_B},
     (ALREADY_PUBLISHED, 2, "this run's candidate 1 is already v2, serving: nothing new published")),
    ("the clear of an earlier run's deploy: its candidate is v1, v2 serves", _candidate(None, run_id="run-a", rank=0,
                                                                                       fingerprint="fa"),
     f"{ROOT}/2", {1: {"run_id": "run-a", "rank": 0, "fingerprint": "fa"}, 2: RUN_B},
     (ALREADY_PUBLISHED, 1, "this run's candidate 0 is already v1 (published by an earlier try); v2 serves now: "
                            "left as it is")),
    ("overlapping runs: judged against v1, another run published v2", _candidate(f"{ROOT}/1"), f"{ROOT}/2",
     {1: {"run_id": "run-a"}, 2: {"run_id": "run-c", "rank": 0, "fingerprint": "fc"}},
     (REFUSED, None, "evaluated against v1; v2 serves now: the verdict is stale, nothing published (clear this "
                     "run's evaluation to judge the candidate against what serves now)")),
    ("judged when nothing served, v1 serves now", _candidate(None), f"{ROOT}/1", {1: {"run_id": "run-a"}},
     (REFUSED, None, "evaluated when no version served; v1 serves now: the verdict is stale, nothing published "
                     "(clear this run's evaluation to judge the candidate against what serves now)")),
    ("another run's model with the same rank is not this candidate", _candidate(f"{ROOT}/1"), f"{ROOT}/1",
     {1: {"run_id": "run-a", "rank": 1, "fingerprint": "fb"}}, (PUBLISH, None, "judged against v1, which still serves")),
    ("the same run and rank retrained (another fingerprint) is a new model", _candidate(f"{ROOT}/2"), f"{ROOT}/2",
     {2: {**RUN_B, "fingerprint": "old"}}, (PUBLISH, None, "judged against v2, which still serves")),
])
def test_deploy_decision(case, candidate, serving, published, expected):
    decision = decide(candidate, serving, published)
    assert (decision.action, decision.version, decision.reason) == expected, case


def test_version_of_a_serving_path():
    assert version_of(f"{ROOT}/12") == 12 and version_of("gs://b/models/m/3/") == 3
    assert version_of(None) is None and version_of(f"{ROOT}/.incoming-x") is None
