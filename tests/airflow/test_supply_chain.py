"""What the environments and images install is pinned: base images by digest, every Python
distribution by version and hash, for CPython 3.11 on x86_64 Linux; and the locks are not
older than the requirements files they were compiled from."""
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = {  # lock → the requirements files `make lock` compiles it from
    "airflow.txt": ["requirements.txt", "requirements-dev.txt"],
    "trainer.txt": ["include/trainer/requirements.txt", "include/trainer/requirements-dev.txt"],
    "serving.txt": ["include/serving/requirements.txt"],
    "airflow-image.txt": ["requirements.txt"],
    "trainer-image.txt": ["include/trainer/requirements.txt", "include/trainer/requirements-gpu.txt"],
}
_ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+)((?:[ \t]*\\\n[ \t]*--hash=sha256:[0-9a-f]{64})*)", re.M)


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lock: str) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes)."""
    text = (REPO / "constraints" / lock).read_text()
    return {_normalise(m[1]): (m[3], m[4].count("--hash=")) for m in _ENTRY.finditer(text)}


def _requirement_names(path: str) -> set[str]:
    names = set()
    for line in (REPO / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)[0]))
    return names


@pytest.mark.parametrize("lock", [*LOCKS, "tools.txt"])
def test_every_pin_carries_hashes_and_is_resolved_for_python_311_on_linux(lock):
    text = (REPO / "constraints" / lock).read_text()
    assert "--generate-hashes --python-version 3.11 --python-platform x86_64-unknown-linux-gnu" in text
    entries = [line for line in text.splitlines() if re.match(r"[A-Za-z0-9]", line)]
    pins = _pins(lock)
    assert pins and len(pins) == len(entries), "every entry is name==version with hashes"
    assert all(hashes >= 1 for _, hashes in pins.values())


@pytest.mark.parametrize("lock", LOCKS)
def test_locks_hold_every_requirement_they_are_compiled_from(lock):
    """A requirement added without `make lock` would be missing from the lock `make envs` syncs."""
    pins = _pins(lock)
    for requirements in LOCKS[lock]:
        assert _requirement_names(requirements) <= set(pins), f"run `make lock` after editing {requirements}"


def test_images_install_the_tested_versions_and_the_trainer_image_its_cuda_wheels():
    for image, tested in (("airflow-image.txt", "airflow.txt"), ("trainer-image.txt", "trainer.txt")):
        tested_pins = _pins(tested)
        for name, (version, _) in _pins(image).items():
            if name in tested_pins:
                assert tested_pins[name][0] == version, (image, name)
    cuda = {name for name in _pins("trainer-image.txt") if name.startswith("nvidia-")}
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12"} <= cuda
    assert not {name for name in _pins("trainer.txt") if name.startswith("nvidia-")}, "no CUDA in make envs"


def test_dockerfiles_pin_base_images_by_digest_and_install_only_hashed_locks():
    for dockerfile in sorted((REPO / "docker").glob("*/Dockerfile")):
        text = dockerfile.read_text()
        for image in re.findall(r"^FROM\s+(\S+)", text, re.M):
            assert re.search(r"@(sha256:[0-9a-f]{64}|\$\{[A-Z_]+_DIGEST\})$", image), (dockerfile, image)
        for install in re.findall(r"pip install[^\n]*", text):
            assert "--require-hashes" in install and "--no-deps" in install, (dockerfile, install)
            [lock] = re.findall(r"-r (\S+)", install)
            copied = re.search(rf"COPY\s+(?:--\S+\s+)*constraints/(\S+)\s+{re.escape(lock.rsplit('/', 1)[0])}", text)
            assert copied and copied[1] in LOCKS, (dockerfile, install)
