"""The local model store: `{serving_root}/{model_name}/{version}/` plus the version labels.

Layout (what the local TF Serving stand-in reads, see include/serving/README.md):

    {serving_root}/{model_name}/{version}/      one SavedModel per version; versions only grow
    {serving_root}/{model_name}/.rejected-{v}/  a version that failed to load or its smoke test
    {serving_root}/{model_name}/.provenance/{v}.json  where version v came from (run, rank, fingerprint)
    {serving_root}/{model_name}.config.json     {"version_labels": {"stable": 3, "canary": 4}};
                                                its existence lists the model in the server's config
    {serving_root}/.server/{model_name}.lock    serializes deployments of one model

A version appears whole: it is copied under a dotted name (which the server ignores) and
renamed into place. Numbering happens under the model's lock, so concurrent deployments (also
from separate processes: flock) get distinct, ordered versions and never write into one
another's directory; a rejected version's number is never reused.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tune_contract.enums import STABLE

REJECTED = ".rejected-"
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelStore:
    def __init__(self, serving_root: str | Path, model_name: str):
        if not _MODEL_NAME.match(model_name):
            raise ValueError(f"model name {model_name!r}: use letters, digits, '_', '.', '-' (it is a URL "
                             "segment and a directory name)")
        self.root = Path(serving_root).absolute()  # the detached server runs elsewhere
        self.model_name = model_name
        self.base_path = self.root / model_name
        self.config_path = self.root / f"{model_name}.config.json"
        self.state_dir = self.root / ".server"

    # ---- versions -----------------------------------------------------------------------

    def versions(self) -> list[int]:
        if not self.base_path.is_dir():
            return []
        return sorted(int(p.name) for p in self.base_path.iterdir() if p.name.isdigit() and p.is_dir())

    def version_path(self, version: int) -> Path:
        return self.base_path / str(version)

    def stage(self, model_path: str) -> Path:
        """Copy a SavedModel next to the versions, under a name the server ignores."""
        self.base_path.mkdir(parents=True, exist_ok=True)
        staged = self.base_path / f".incoming-{uuid.uuid4().hex}"
        try:
            _copy_tree(model_path, staged)
            if not any(staged.glob("saved_model.pb*")):
                raise FileNotFoundError(f"{model_path} is not a SavedModel directory (no saved_model.pb)")
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        return staged

    def publish(self, staged: Path, provenance: bytes = b"{}") -> int:
        """Rename a staged copy into place as the next version, its provenance recorded first (a
        version never exists without it). Call with the lock held."""
        version = max([*self.versions(), *self.rejected_versions()], default=0) + 1
        record = self.provenance_path(version)
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(provenance)
        os.replace(tmp, record)  # a failed rename below leaves it for a number the next publish rewrites
        os.rename(staged, self.version_path(version))  # same directory: atomic, and fails if it exists
        return version

    def provenance_path(self, version: int) -> Path:
        return self.base_path / ".provenance" / f"{version}.json"

    def published(self) -> dict[int, bytes]:
        """{version: its provenance record} of every version there is (b"" where none was recorded)."""
        found = {}
        for version in self.versions():
            try:
                found[version] = self.provenance_path(version).read_bytes()
            except FileNotFoundError:
                found[version] = b""
        return found

    def rejected_versions(self) -> list[int]:
        if not self.base_path.is_dir():
            return []
        return sorted(int(p.name.removeprefix(REJECTED)) for p in self.base_path.iterdir()
                      if p.name.startswith(REJECTED) and p.name.removeprefix(REJECTED).isdigit())

    def reject(self, version: int) -> Path:
        """Move a version aside, where the server never looks: it is unloaded and never served."""
        aside = self.base_path / f"{REJECTED}{version}"
        os.rename(self.version_path(version), aside)
        return aside

    # ---- labels -------------------------------------------------------------------------

    def labels(self) -> dict[str, int]:
        try:
            return {k: int(v) for k, v in json.loads(self.config_path.read_text())["version_labels"].items()}
        except FileNotFoundError:
            return {}

    def set_labels(self, labels: dict[str, int]) -> None:
        """Replace the labels atomically: the server never reads a half-written file."""
        tmp = self.config_path.with_name(f".{self.config_path.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps({"version_labels": labels}, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.config_path)

    def configured(self) -> bool:
        return self.config_path.exists()

    def configure(self) -> None:
        """List the model in the server's config (its config file), keeping any labels."""
        if not self.configured():
            self.set_labels({})

    def stable_path(self) -> Path | None:
        stable = self.labels().get(STABLE)
        path = self.version_path(stable) if stable is not None else None
        return path if path is not None and path.is_dir() else None

    # ---- locking ------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float) -> Iterator[None]:
        """Exclusive per-model lock (flock: released by the OS if the holder dies)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / f"{self.model_name}.lock", "w") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"another deployment of {self.model_name} held its lock "
                                           f"for over {timeout:.0f}s") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _copy_tree(source: str, destination: Path) -> None:
    if "://" in source and not source.startswith("file://"):
        import fsspec  # remote storage (gs://...), through the filesystem Airflow already ships

        fs, path = fsspec.core.url_to_fs(source)
        fs.get(path.rstrip("/") + "/", str(destination), recursive=True)
    else:
        shutil.copytree(source.removeprefix("file://"), destination)
