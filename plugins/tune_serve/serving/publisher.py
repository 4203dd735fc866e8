"""Publishing a version of a model, the same on every platform.

Both platforms publish through this module: the local model store (`tune_serve.local.model_store`,
a flock and a rename) and the Kubernetes one (`tune_serve.kubernetes.serving_versions`, a Lease and
a create-if-absent marker) each implement `VersionStore`, where a model's versions and their
provenance live; the rest is here:

- the deploy decision (`Publisher.held`): under the model's deploy lock, on what serves now and on
  the provenance every published version carries, whether this run's candidate may be published
  (`deploy_decision.decide`); the result when it may not;
- the version's provenance (`Publisher.publish`): the record written with the new version (run,
  candidate rank, source model, SavedModel fingerprint: `provenance`);
- the labels while a version is tried and once it serves (`canary`, `promoted`, `settled`):
  `canary` → the new version beside the `stable` one, then `stable` → the new version;
- the result of the deploy (`deploy_decision.result` and its two shapes).

What stays on each platform: where the bytes go, the lock, and how the server is told (a label
file the local server polls; a ConfigMap and a rolling update of TF Serving's Deployment).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tune_contract.enums import CANARY, STABLE
from tune_serve.serving import deploy_decision, provenance
from tune_serve.serving.deploy_decision import DeployResult

log = logging.getLogger(__name__)


class VersionStore(Protocol):
    """Where one model's versions live on a platform's storage."""

    def published(self) -> dict[int, bytes]:
        """{version: the provenance recorded with it} of every version there is (b"" when none)."""
        ...

    def publish(self, staged: Any, provenance: bytes) -> int:
        """Make a staged copy the next version, with its provenance; call holding the deploy lock."""
        ...


def settled(labels: Mapping[str, int]) -> dict[str, int]:
    """The labels without a version on trial (what a failed trial goes back to)."""
    return {label: version for label, version in labels.items() if label != CANARY}


def canary(labels: Mapping[str, int], version: int) -> dict[str, int]:
    """While `version` is tried: `stable` (and any other settled label) kept, `canary` → `version`."""
    return {**settled(labels), CANARY: version}


def promoted(labels: Mapping[str, int], version: int) -> dict[str, int]:
    """Once `version` passed its smoke test: `stable` → `version`, no `canary`."""
    return {**settled(labels), STABLE: version}


@dataclass(frozen=True)
class Publisher:
    """One deploy of `model_path` as a version of `model_name` into `store`. `candidate` is the
    run's (`{"run_id", "rank", "judged_against"}`), None for a deployment by hand (always published)."""

    model_name: str
    store: VersionStore
    model_path: str
    fingerprint: str  # provenance.fingerprint(model_path), computed before the lock
    candidate: Mapping[str, Any] | None = None

    def held(self, serving_path: str | None, serving_version: int | None, url: str) -> DeployResult | None:
        """Under the deploy lock: the result when the candidate must not be published (already
        published, or its verdict is stale), else None (publish). `serving_path`: the stable
        version's SavedModel now."""
        if self.candidate is None:
            return None
        versions = {v: provenance.loads(p) for v, p in self.store.published().items()}
        decision = deploy_decision.decide({**self.candidate, "fingerprint": self.fingerprint}, serving_path,
                                          versions)
        if decision.action == deploy_decision.PUBLISH:
            return None
        log.info("%s: %s", self.model_name, decision.reason)
        return deploy_decision.held(self.model_name, decision, serving_version, url)

    def publish(self, staged: Any) -> int:
        """The staged copy as the next version, its provenance recorded with it (under the lock)."""
        record = provenance.record(dict(self.candidate) if self.candidate is not None else None,
                                   self.model_path, self.fingerprint)
        return self.store.publish(staged, provenance.dumps(record))
