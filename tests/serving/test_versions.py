"""The version policy of the TF Serving stand-in, without TensorFlow models or a server."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from kserve import Model
from kserve.model_repository import ModelRepository
from tf_serving_rest.versions import ModelVersions, ServableNotFound, version_key

NAME = "scorer"


class FakeVersion(Model):
    """Loads instantly; fails if its directory holds a file named `broken`."""
    loads: list[int] = []

    def __init__(self, model_name: str, version: int, path: Path):
        super().__init__(model_name)
        self.version, self.path = version, path

    def load(self) -> bool:
        FakeVersion.loads.append(self.version)
        if (self.path / "broken").exists():
            raise ValueError("Error parsing message with type 'tensorflow.SavedModel'")
        self.ready = True
        return True


@pytest.fixture
def store(tmp_path):
    FakeVersion.loads = []
    registry = ModelRepository()
    versions = ModelVersions(NAME, tmp_path / NAME, tmp_path / f"{NAME}.config.json", registry, FakeVersion)
    return tmp_path, versions, registry


def add(root: Path, version: int, broken: bool = False) -> Path:
    path = root / NAME / str(version)
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"pb")
    if broken:
        (path / "broken").touch()
    return path


def label(root: Path, **labels: int) -> None:
    (root / f"{NAME}.config.json").write_text(json.dumps({"version_labels": labels}))


def states(versions: ModelVersions) -> dict[int, str]:
    return {s.version: s.state for s in versions.status()}


def default_of(registry: ModelRepository) -> int | None:
    model = registry.get_model(NAME)
    return model.version if model else None


def test_without_labels_the_highest_loadable_version_serves(store):
    root, versions, registry = store
    versions.poll_once()
    assert default_of(registry) is None
    with pytest.raises(ServableNotFound, match="any versions"):
        versions.status()
    add(root, 1)
    add(root, 2)
    (root / NAME / ".incoming-x").mkdir()  # staged copies are ignored
    versions.poll_once()
    assert default_of(registry) == 2
    assert states(versions) == {2: "AVAILABLE"}  # only the newest is loaded

    add(root, 3, broken=True)
    versions.poll_once()
    assert default_of(registry) == 2
    (status,) = versions.status(version=3)
    assert (status.state, status.error_code) == ("END", "UNKNOWN") and "parsing" in status.error_message
    versions.poll_once()
    assert FakeVersion.loads.count(3) == 1  # a failed version is not retried...

    (root / NAME / "3" / "broken").unlink()  # ...until its directory changes
    os.utime(root / NAME / "3", ns=(1, 1))
    versions.poll_once()
    assert default_of(registry) == 3
    assert registry.get_model(version_key(NAME, 2)) is None  # unloaded: no label, not newest


def test_stable_label_decides_the_default_and_labels_keep_versions_loaded(store):
    root, versions, registry = store
    for v in (1, 2, 3):
        add(root, v)
    label(root, stable=1, canary=2)
    versions.poll_once()
    assert default_of(registry) == 1
    assert FakeVersion.loads[0] == 1  # stable first: the default route is up soonest
    assert states(versions) == {1: "AVAILABLE", 2: "AVAILABLE", 3: "AVAILABLE"}
    assert versions.registry_key(label="canary") == version_key(NAME, 2)

    label(root, stable=3)
    versions.poll_once()
    assert default_of(registry) == 3
    assert states(versions) == {1: "END", 2: "END", 3: "AVAILABLE"}
    with pytest.raises(ServableNotFound):
        versions.registry_key(label="canary")


def test_a_stable_label_on_a_broken_version_keeps_the_serving_one(store):
    root, versions, registry = store
    add(root, 1)
    label(root, stable=1)
    versions.poll_once()
    add(root, 2, broken=True)
    label(root, stable=2)
    versions.poll_once()
    assert default_of(registry) == 1
    assert states(versions) == {1: "AVAILABLE", 2: "END"}


def test_an_unlabelled_version_is_never_promoted_while_stable_is_unavailable(store):
    root, versions, registry = store
    add(root, 1)
    add(root, 2, broken=True)
    label(root, stable=2)
    versions.poll_once()
    assert default_of(registry) is None


def test_a_half_written_config_keeps_the_labels(store):
    root, versions, registry = store
    add(root, 1)
    add(root, 2)
    label(root, stable=1)
    versions.poll_once()
    (root / f"{NAME}.config.json").write_text('{"version_labels": {"stable": ')
    versions.poll_once()
    assert default_of(registry) == 1


def test_a_vanished_version_is_unloaded(store):
    root, versions, registry = store
    add(root, 1)
    path = add(root, 2)
    versions.poll_once()
    assert default_of(registry) == 2
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
    versions.poll_once()
    assert default_of(registry) == 1
    assert 2 not in states(versions)


def test_a_model_in_the_config_is_served_only_through_its_stable_label(store):
    # A deployer manages the model (its config file exists): an unlabelled or canary version
    # is loaded so it can be tested by version, but the default route never serves it.
    root, versions, registry = store
    label(root)  # {"version_labels": {}}: the model is configured, nothing is stable yet
    add(root, 1)
    versions.poll_once()
    assert states(versions) == {1: "AVAILABLE"}
    assert default_of(registry) is None
    with pytest.raises(ServableNotFound, match=r"Servable not found for request: Latest\(scorer\)"):
        versions.registry_key()
    label(root, canary=1)
    versions.poll_once()
    assert default_of(registry) is None
    label(root, stable=1)
    versions.poll_once()
    assert default_of(registry) == 1 and versions.registry_key() == NAME


def test_a_version_moved_aside_is_unloaded_and_the_model_is_absent(store):
    root, versions, registry = store
    label(root)
    path = add(root, 1)
    versions.poll_once()
    os.rename(path, root / NAME / ".rejected-1")  # what a deployer does with a rejected version
    versions.poll_once()
    with pytest.raises(ServableNotFound, match="Could not find any versions of model scorer"):
        versions.status()
    assert registry.get_model(version_key(NAME, 1)) is None


def test_a_serving_root_serves_every_configured_model(tmp_path):
    from tf_serving_rest.versions import ModelSet

    FakeVersion.loads = []
    registry = ModelRepository()
    models = ModelSet(tmp_path, registry, FakeVersion)
    models.poll_once()
    with pytest.raises(ServableNotFound, match="Could not find any versions of model scorer"):
        models.get(NAME)
    label(tmp_path, stable=1)
    add(tmp_path, 1)
    (tmp_path / "other").mkdir()
    (tmp_path / "other.config.json").write_text(json.dumps({"version_labels": {}}))
    models.poll_once()
    assert default_of(registry) == 1
    assert models.get("other").model_name == "other"
    with pytest.raises(ServableNotFound):
        models.get("../etc")
