"""One piece of code publishes a version on both platforms (tune_serve.serving.publisher), and a
deploy's result is built in one place (deploy_decision.result)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import get_type_hints

from tune_contract.enums import CANARY, STABLE
from tune_serve.serving import deploy_decision, provenance
from tune_serve.serving.deploy_decision import ALREADY_PUBLISHED, PUBLISH, REFUSED, DeployResult
from tune_serve.serving.publisher import Publisher, canary, promoted, settled

PLUGINS = Path(__file__).resolve().parents[2] / "plugins" / "tune_serve"


class Store:
    """A VersionStore in memory."""

    def __init__(self, published=None):
        self.versions: dict[int, bytes] = dict(published or {})

    def published(self):
        return dict(self.versions)

    def publish(self, staged, record: bytes = b"") -> int:
        version = max(self.versions, default=0) + 1
        self.versions[version] = record
        return version


def test_the_labels_of_a_trial_and_of_a_promotion():
    assert canary({}, 1) == {CANARY: 1}
    assert canary({STABLE: 3}, 4) == {STABLE: 3, CANARY: 4}
    assert canary({STABLE: 3, CANARY: 4}, 5) == {STABLE: 3, CANARY: 5}
    assert promoted({STABLE: 3, CANARY: 4}, 4) == {STABLE: 4}
    assert settled({STABLE: 3, CANARY: 4}) == {STABLE: 3}


def test_a_deployment_by_hand_is_always_published_with_its_provenance():
    store = Store({1: provenance.dumps({"run_id": "r", "rank": 0, "fingerprint": "f"})})
    publisher = Publisher("m", store, "/models/0", "f", candidate=None)
    assert publisher.held("/srv/m/1", 1, "http://x") is None
    version = publisher.publish("staged")
    assert version == 2
    assert provenance.loads(store.versions[2]) == {"run_id": None, "rank": None, "source_model": "/models/0",
                                                    "fingerprint": "f"}


def test_a_candidate_already_published_or_stale_is_held_with_the_one_result_shape():
    mine = {"run_id": "r", "rank": 0, "fingerprint": "f"}
    store = Store({1: provenance.dumps(mine)})
    held = Publisher("m", store, "/models/0", "f", {"run_id": "r", "rank": 0, "judged_against": None}).held(
        "/srv/m/1", 1, "http://x")
    assert held == {"model_name": "m", "action": ALREADY_PUBLISHED, "version": 1, "serving_version": 1,
                    "url": "http://x", "previous_version": None, "prediction": None,
                    "reason": "this run's candidate 0 is already v1, serving: nothing new published"}
    stale = Publisher("m", store, "/models/1", "g", {"run_id": "s", "rank": 0, "judged_against": None}).held(
        "/srv/m/1", 1, "http://x")
    assert stale is not None and stale["action"] == REFUSED and stale["version"] is None
    fresh = Publisher("m", store, "/models/1", "g", {"run_id": "s", "rank": 0, "judged_against": "/srv/m/1"})
    assert fresh.held("/srv/m/1", 1, "http://x") is None
    assert provenance.loads(store.versions[fresh.publish("staged")])["run_id"] == "s"


def test_a_published_result_says_what_it_replaced():
    first = deploy_decision.published("m", 1, None, "http://x", [1.0])
    assert first["action"] == PUBLISH and first["reason"] == "the first version" and first["serving_version"] == 1
    assert deploy_decision.published("m", 3, 2, "http://x", None)["reason"] == "v3 replaces v2"
    assert set(first) == set(get_type_hints(DeployResult))


def test_no_module_but_deploy_decision_builds_a_deploy_result():
    """The keys are stated once: no other dict literal of the package carries `previous_version`."""
    found = []
    for path in sorted(PLUGINS.rglob("*.py")):
        if path.name == "deploy_decision.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "previous_version"
                                                  for k in node.keys):
                found.append(f"{path.relative_to(PLUGINS)}:{node.lineno}")
    assert found == []
