"""A model's versions on the cluster's storage (GCS or a ReadWriteMany volume).

`stage` copies a SavedModel next to the versions under a name TF Serving never loads
(`{base_path}/.staging-<id>/`), outside the Lease; `VersionDir` is the Kubernetes
`VersionStore` of `tune_serve.serving.publisher`: it publishes a staged copy as the next version
(claimed by a create-if-absent marker `{base_path}/.versions/{version}` that holds the version's
provenance) and lists the versions with their provenance.
"""
from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

from tune_serve import storage
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.serving.errors import ModelRejected

log = logging.getLogger(__name__)


def _path(uri: str):
    return storage.path(uri, cluster_settings.load().gcp_conn_id)


def stage(model_path: str, base_path: str):
    """Copy the SavedModel next to the versions, under a name TF Serving never loads."""
    source = _path(model_path)
    if not (source / "saved_model.pb").exists():
        raise ModelRejected(f"{model_path} is not a SavedModel directory (no saved_model.pb)")
    staged = _path(base_path) / f".staging-{uuid.uuid4().hex}"
    try:
        source.copy(staged, recursive=True)
    except BaseException:
        remove(staged)
        raise
    return staged


@dataclass(frozen=True)
class VersionDir:
    """A model's versions under `{base_path}` (`tune_serve.serving.publisher.VersionStore`):
    `{base_path}/{version}/` and the markers `{base_path}/.versions/{version}` holding each
    version's provenance. `taken`: version numbers the Deployment's state names (never reused)."""

    base_path: str
    taken: tuple[int, ...] = ()

    def root(self) -> Any:
        """The base path as an ObjectStoragePath."""
        return _path(self.base_path)

    def publish(self, staged: Any, provenance: bytes = b"") -> int:
        """Make a staged copy the next version. Call holding the model's Lease.

        The number is claimed with a create-if-absent marker, so that even two deployments that
        both believed they held the Lease never share a version directory; the marker holds the
        version's provenance, written once and never changed (an object on GCS is immutable). The
        copy then moves in with one rename on a volume (on GCS a copy into the claimed prefix,
        which TF Serving only loads once the model config names it)."""
        base = _path(self.base_path)
        markers = base / ".versions"
        existing = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
        claimed = [int(p.name) for p in markers.iterdir() if p.name.isdigit()] if markers.exists() else []
        version = max([*existing, *claimed, *self.taken], default=0) + 1
        while not _create_if_absent(markers / str(version), provenance):
            version += 1
        target = base / str(version)
        if target.protocol in ("file", "local", ""):
            os.rename(staged.path, target.path)  # same directory: atomic, and fails if the target exists
        else:
            staged.fs.mv(staged.path, target.path, recursive=True)
        return version

    def published(self) -> dict[int, bytes]:
        """{version: the provenance its marker holds} of every version on storage (b"" for a
        version published before markers held one)."""
        base = _path(self.base_path)
        if not base.exists():
            return {}
        markers = base / ".versions"
        found = {}
        for p in base.iterdir():
            if p.name.isdigit():
                marker = markers / p.name
                found[int(p.name)] = marker.read_bytes() if marker.exists() else b""
        return found


def _create_if_absent(path, content: bytes = b"") -> bool:
    """Write a marker only if none exists (O_EXCL locally, ifGenerationMatch=0 on GCS)."""
    if path.protocol in ("file", "local", ""):
        os.makedirs(os.path.dirname(path.path), exist_ok=True)
        try:
            fd = os.open(path.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as marker:
            marker.write(content)
        return True
    try:
        path.fs.pipe_file(path.path, content, mode="create")
    except FileExistsError:
        return False
    return True


def remove(path) -> None:
    try:
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    except OSError:
        log.warning("could not remove %s", path, exc_info=True)
