"""The versions of one model: which are on disk, loaded, labelled, and served by default.

Mirrors TF Serving's model manager for a single model base path:
- a version is an integer-named directory under the base path (anything else is ignored,
  so writers stage a copy under a dotted name and rename it into place);
- the poller loads the versions that labels point at, the newest one (so a deployer can test
  it before labelling it) and the one serving by default; others are unloaded (memory);
- the default route serves the `stable` label's version once it is AVAILABLE. A model whose
  config file exists is managed by a deployer: without a `stable` label it has no default
  route (404), so an untested or rejected version never answers a client. Only versions put
  there by hand, with no config file at all, get TF Serving's latest policy (the highest
  AVAILABLE version);
- a version that fails to load is reported END with its error and never served; it is
  retried only if its directory changes.

Every loaded version is a kserve.Model in KServe's ModelRepository under the key
`{name}/versions/{v}`; the key `{name}` (KServe's own :predict route) points at the
default version. Switching versions is one dict assignment: a request in flight keeps the
model object it already holds.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kserve.errors import ModelNotFound
from kserve.model_repository import ModelRepository

from .model_config import read_version_labels
from .saved_model import SavedModelVersion

log = logging.getLogger("kserve.tf_serving_rest")

STABLE_LABEL = "stable"
LOADING, AVAILABLE, END = "LOADING", "AVAILABLE", "END"


class ServableNotFound(ModelNotFound):
    """404 with TF Serving's wording; KServe's ModelNotFound handler renders {"error": ...}."""

    def __init__(self, reason: str):
        self.reason = reason


class UnknownLabel(ServableNotFound):
    """TF Serving answers an unknown version label with INVALID_ARGUMENT: HTTP 400, not 404."""


@dataclass(frozen=True)
class VersionStatus:
    version: int
    state: str
    error_code: str = "OK"
    error_message: str = ""

    def as_json(self) -> dict:
        return {"version": str(self.version), "state": self.state,
                "status": {"error_code": self.error_code, "error_message": self.error_message}}


def version_key(model_name: str, version: int) -> str:
    """Registry key of one version; has a '/', so KServe's own /v1/models/{name} routes never match it."""
    return f"{model_name}/versions/{version}"


def versions_on_disk(base_path: Path) -> dict[int, Path]:
    try:
        entries = list(Path(base_path).iterdir())
    except FileNotFoundError:
        return {}
    return {int(p.name): p for p in entries if p.name.isdigit() and p.is_dir()}


def _fingerprint(path: Path) -> tuple:
    """Changes when a version directory is rewritten, so a failed load is retried only then."""
    stats = [path.stat()] + [p.stat() for p in path.glob("saved_model.pb*")]
    return tuple((s.st_mtime_ns, s.st_size) for s in stats)


class ModelVersions:
    def __init__(self, model_name: str, base_path: Path, config_path: Path, registry: ModelRepository,
                 load_version: Callable[[str, int, Path], SavedModelVersion] = SavedModelVersion):
        self.model_name = model_name
        self.base_path = Path(base_path)
        self.config_path = Path(config_path)
        self._registry = registry
        self._new_version = load_version
        self._lock = threading.Lock()  # guards the fields below; the poller is the only writer
        self._status: dict[int, VersionStatus] = {}
        self._loaded: dict[int, SavedModelVersion] = {}
        self._failed: dict[int, tuple] = {}  # version -> fingerprint of the directory that failed
        self._labels: dict[str, int] = {}
        self._default: int | None = None
        self._config_error: str | None = None
        self._managed = False  # a config file exists: the default route is the stable label only

    # ---- queries (request threads) -------------------------------------------------------

    def status(self, version: int | None = None, label: str | None = None) -> list[VersionStatus]:
        with self._lock:
            if version is None and label is None:
                if not self._status:
                    raise ServableNotFound(f"Could not find any versions of model {self.model_name}")
                return [self._status[v] for v in sorted(self._status, reverse=True)]
            version = self._version_for(version, label)
            if version not in self._status:
                raise ServableNotFound(f"Could not find version {version} of model {self.model_name}")
            return [self._status[version]]

    def registry_key(self, version: int | None = None, label: str | None = None) -> str:
        """Key of an AVAILABLE version in KServe's registry, for a predict request; without a
        version or label, the default route's key."""
        with self._lock:
            if version is None and label is None:
                if self._default is None:
                    raise ServableNotFound(f"Servable not found for request: Latest({self.model_name})")
                return self.model_name
            version = self._version_for(version, label)
            if version not in self._loaded:
                raise ServableNotFound(f"Servable not found for request: Specific({self.model_name}, {version})")
            return version_key(self.model_name, version)

    def loaded(self, version: int | None = None, label: str | None = None) -> SavedModelVersion:
        """The loaded model of a version, a label, or (neither given) the default route."""
        with self._lock:
            if version is None and label is None:
                version = self._default
            else:
                version = self._version_for(version, label)
            if version not in self._loaded:
                raise ServableNotFound(f"Servable not found for request: Specific({self.model_name}, {version})")
            return self._loaded[version]

    def _version_for(self, version: int | None, label: str | None) -> int:
        if label is None:
            return version
        if label not in self._labels:
            raise UnknownLabel(f"Unrecognized servable version label: {label}")
        return self._labels[label]

    # ---- polling (one background thread) ---------------------------------------------------

    def poll_once(self) -> None:
        on_disk = versions_on_disk(self.base_path)
        labels = self._read_labels()
        self._forget_vanished(on_disk)
        self._route(labels)  # labels that point at versions already loaded apply at once
        for version in self._wanted(on_disk, labels):
            if version not in self._loaded and self._failed.get(version) != _fingerprint(on_disk[version]):
                self._load(version, on_disk[version])
                self._route(labels)
        self._unload_all_but(set(self._wanted(on_disk, labels)))  # the default may have moved

    def _read_labels(self) -> dict[str, int]:
        self._managed = self.config_path.exists()
        try:
            labels = read_version_labels(self.config_path)
        except (ValueError, OSError) as exc:  # a half-edited file: keep the labels we had
            if str(exc) != self._config_error:
                log.error("ignoring model config: %s", exc)
            self._config_error = str(exc)
            return dict(self._labels)
        self._config_error = None
        return labels

    def _wanted(self, on_disk: dict[int, Path], labels: dict[str, int]) -> list[int]:
        """Versions to keep loaded, in loading order: stable first, so the default route is up soonest."""
        wanted = [labels.get(STABLE_LABEL), self._default, *labels.values(), max(on_disk, default=None)]
        return list(dict.fromkeys(v for v in wanted if v in on_disk))

    def _load(self, version: int, path: Path) -> None:
        self._set_status(VersionStatus(version, LOADING))
        log.info("loading %s version %d from %s", self.model_name, version, path)
        model = self._new_version(self.model_name, version, path)
        try:
            model.load()
        except Exception as exc:
            code = "NOT_FOUND" if isinstance(exc, (OSError, FileNotFoundError)) else "UNKNOWN"
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.error("version %d of %s failed to load: %s", version, self.model_name, message)
            self._failed[version] = _fingerprint(path)
            self._set_status(VersionStatus(version, END, code, f"Failed to load version {version}: {message}"))
            return
        self._failed.pop(version, None)
        self._registry.update(model, version_key(self.model_name, version))
        with self._lock:
            self._loaded[version] = model
            self._status[version] = VersionStatus(version, AVAILABLE)
        log.info("version %d of %s is AVAILABLE", version, self.model_name)

    def _route(self, labels: dict[str, int]) -> None:
        """Point the default route and the labels at AVAILABLE versions."""
        stable = labels.get(STABLE_LABEL)
        if stable in self._loaded:
            default = stable
        elif stable is not None and self._default in self._loaded:
            default = self._default  # stable not servable (yet): keep serving what we serve
        elif stable is None and self._loaded and not self._managed:
            default = max(self._loaded)
        else:
            default = None
        if default != self._default:
            if default is None:
                self._registry.unload(self.model_name)
            else:
                self._registry.update(self._loaded[default], self.model_name)
            log.info("default route of %s: version %s -> %s", self.model_name, self._default, default)
        # Default route first, labels second: once GET .../labels/stable shows a version,
        # the default route serves it too.
        with self._lock:
            self._default = default
            self._labels = labels

    def _unload_all_but(self, keep: set[int]) -> None:
        for version in [v for v in self._loaded if v not in keep]:
            with self._lock:
                model = self._loaded.pop(version)
                self._status[version] = VersionStatus(version, END)
            self._registry.unload(version_key(self.model_name, version))
            log.info("unloaded version %d of %s (no label, not newest)", model.version, self.model_name)

    def _forget_vanished(self, on_disk: dict[int, Path]) -> None:
        for version in [v for v in self._status if v not in on_disk]:
            with self._lock:
                self._status.pop(version)
                model = self._loaded.pop(version, None)
            self._failed.pop(version, None)
            if model is not None:
                self._registry.unload(version_key(self.model_name, version))
                log.info("version %d of %s vanished from disk: unloaded", version, self.model_name)
        if self._default is not None and self._default not in self._loaded:
            self._registry.unload(self.model_name)
            with self._lock:
                self._default = None

    def _set_status(self, status: VersionStatus) -> None:
        with self._lock:
            self._status[status.version] = status


class ModelSet:
    """Every model of a serving root, as TF Serving's model config lists them.

    A model `NAME` is served once its config file `{root}/NAME.config.json` exists (a deployer
    writes it before the first version, as it would add the model to TF Serving's
    `model_config_list`), from the base path `{root}/NAME`. Re-read on every poll, like TF
    Serving's `--model_config_file_poll_wait_seconds`.
    """

    SUFFIX = ".config.json"

    def __init__(self, root: Path, registry: ModelRepository,
                 load_version: Callable[[str, int, Path], SavedModelVersion] = SavedModelVersion):
        self.root = Path(root)
        self._registry = registry
        self._load_version = load_version
        self._models: dict[str, ModelVersions] = {}
        self._lock = threading.Lock()

    @classmethod
    def single(cls, versions: ModelVersions) -> "ModelSet":
        """One model from an explicit base path and config file (`--model-base-path`)."""
        models = cls(versions.base_path.parent, versions._registry)
        models._models[versions.model_name] = versions
        models._fixed = True
        return models

    _fixed = False

    def get(self, model_name: str) -> ModelVersions:
        with self._lock:
            versions = self._models.get(model_name)
        if versions is None:
            raise ServableNotFound(f"Could not find any versions of model {model_name}")
        return versions

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def poll_once(self) -> None:
        if not self._fixed:
            self._discover()
        with self._lock:
            models = list(self._models.values())
        for versions in models:
            try:
                versions.poll_once()
            except Exception:  # one model's trouble never stops the others from being served
                log.exception("polling model %s failed", versions.model_name)

    def run_forever(self, poll_seconds: float, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll_once()
            stop.wait(poll_seconds)

    def _discover(self) -> None:
        try:
            configs = [p for p in self.root.iterdir() if p.name.endswith(self.SUFFIX) and not p.name.startswith(".")]
        except FileNotFoundError:
            return
        for config in configs:
            name = config.name[:-len(self.SUFFIX)]
            if name and name not in self._models:
                log.info("model %s added from %s", name, config)
                with self._lock:
                    self._models[name] = ModelVersions(name, self.root / name, config, self._registry,
                                                       self._load_version)
