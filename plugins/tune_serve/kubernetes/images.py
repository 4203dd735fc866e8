"""Container images by digest: what a pod runs must not change under a moved tag.

A setting (`TUNE_SERVE_TRAINER_IMAGE`, `TUNE_SERVE_SERVING_IMAGE`) may name an image as
`repository[:tag]@sha256:<64 hex>`. Pods, the chief's Job and TF Serving's Deployment then run
`repository@sha256:…` (what the kubelet pulls is fixed), and the whole reference, tag included,
is kept for people in the annotation `tune-serve/image`. A reference without a digest is used as
given: this package cannot know a registry's digests (no registry is reachable where it is built),
so `make render-k8s` lists every image still by tag and the README says how to pin them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

ANNOTATION: Final = "tune-serve/image"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# registry/path[:tag]: lower-case path components, a tag of word characters, dots and dashes
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str | None
    digest: str | None

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def for_pod(self) -> str:
        """What a container's `image` says: by digest when there is one."""
        if self.digest:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}" if self.tag else self.repository


def parse(reference: str, setting: str) -> Image:
    """An image reference; ValueError naming `setting` when it is not one."""
    name, _, digest = reference.partition("@")
    if digest and not _DIGEST.match(digest):
        raise ValueError(f"{setting}: {reference!r}: a digest is sha256: and 64 lower-case hex digits")
    repository, tag = name, None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:  # a registry's port is before the first '/', never in the last component
        repository, tag = name.rsplit(":", 1)
    if not _REPOSITORY.match(repository) or (tag is not None and not _TAG.match(tag)):
        raise ValueError(f"{setting}: {reference!r} is not an image reference "
                         "(repository[:tag][@sha256:digest])")
    return Image(repository, tag, digest or None)
