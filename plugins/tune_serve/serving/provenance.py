"""Where a served version came from: the run, the candidate's rank, the SavedModel's fingerprint.

Recorded once per version when it is published (the local store's `.provenance/{version}.json`,
the Kubernetes backend's create-if-absent version marker), read under the deploy lock by
`deploy_decision` to tell a retry of the same candidate from a new model.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from tune_serve import storage

# TF writes fingerprint.pb beside saved_model.pb (TF >= 2.12): hashes of the graph, the
# signatures and the checkpoint, so hashing it and the graph is cheap whatever the size of the
# variables; saved_model.pb is hashed too, so a graph replaced under an old fingerprint.pb differs.
_FINGERPRINT_FILES = ("fingerprint.pb", "saved_model.pb")


def fingerprint(model_path: str, conn_id: str | None = None) -> str:
    """sha256 over the SavedModel's fingerprint.pb (when it has one) and saved_model.pb."""
    root = storage.path(model_path, conn_id)
    if not (root / "saved_model.pb").exists():
        raise FileNotFoundError(f"{model_path} is not a SavedModel directory (no saved_model.pb)")
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        file = root / name
        if file.exists():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def record(candidate: dict[str, Any] | None, model_path: str, fingerprint_: str) -> dict[str, Any]:
    """The provenance of a version about to be published (`candidate`: {run_id, rank, ...} or None
    for a deployment outside a run)."""
    candidate = candidate or {}
    return {"run_id": candidate.get("run_id"), "rank": candidate.get("rank"), "source_model": model_path,
            "fingerprint": fingerprint_}


def dumps(provenance: dict[str, Any]) -> bytes:
    return json.dumps(provenance, sort_keys=True).encode()


def loads(data: bytes | str) -> dict[str, Any]:
    """A version's provenance; {} for a version published before it was recorded (or unreadable)."""
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
