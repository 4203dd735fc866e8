"""The manifests under include/k8s/, loaded and filled in for one object the code creates.

Each file is a complete, valid example on its own (`kubectl apply --dry-run=client`);
the code keeps its policy (probes, ports, rollout strategy, Job failure policy) and sets
only what belongs to a run or a model: names, namespace, labels, images, arguments.
"""
from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tune_serve import config

MANIFESTS = config.REPO_ROOT / "include" / "k8s"


def path(relative: str) -> Path:
    return MANIFESTS / relative


@cache
def _load(relative: str) -> tuple[dict, ...]:
    with open(path(relative)) as f:
        return tuple(d for d in yaml.safe_load_all(f) if d)


def load(relative: str) -> dict[str, Any]:
    """A fresh copy of the single object in `relative`."""
    (document,) = _load(relative)
    return copy.deepcopy(document)


def load_all(relative: str) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_load(relative)))


def named(manifest: dict, name: str, namespace: str, labels: dict[str, str] | None = None) -> dict:
    metadata = manifest.setdefault("metadata", {})
    metadata["name"] = name
    metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = {**metadata.get("labels", {}), **labels}
    return manifest
