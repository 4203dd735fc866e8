"""The data roots: where a run's `source` (and any other file a run's parameters name) may be read.

A user who may trigger the DAG must not gain a read right on the worker or the bucket: the
prepared data, its vocabularies and sample rows come back through the viewer, XCom and
`:predict`. So a path from a run is read only when it lies under one of the folders or
`gs://bucket/prefix` roots the installer lists in `TUNE_SERVE_DATA_ROOTS` (environment only,
never an Airflow Variable or a run's conf). The bundled datasets are names, never paths, and
are always allowed.

The rule is stated once, here, and applied on both sides: `validate_conf` (Airflow, before the
run exists) and `prepare` (the trainer, before it opens anything), with the same roots (the
plan hands Airflow's to the trainer as `--data-roots`).

- A local path (or `file://` URI) must be absolute; it is resolved with `os.path.realpath`, so a
  symlink or `..` leading out of a root is out, and compared with each root's real path by path
  components (`/data` holds `/data/a.csv`, not `/database.csv`).
- A `gs://` URI must have the root's bucket and the root's prefix as its first path segments; a
  `.` or `..` segment, a `%` (an object store may decode it again) or a NUL byte is refused,
  never normalised, so the object read is the one compared.
- Anything else (a relative path, another scheme) is under no root.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Final

ENV: Final = "TUNE_SERVE_DATA_ROOTS"
# Commas, not os.pathsep: a gs:// root holds a ':'. A root cannot contain a comma.
SEPARATOR: Final = ","
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")

# (scheme, bucket, path segments): ("file", "", ("/", "data", "a.csv")), ("gs", "b", ("p", "a.csv"))
_Location = tuple[str, str, tuple[str, ...]]


def _parse(uri: str) -> _Location | None:
    """`uri` as a location, or None when it can be under no root."""
    if "\0" in uri:
        return None
    if uri.startswith("gs://"):
        bucket, _, name = uri[len("gs://"):].partition("/")
        segments = tuple(name.split("/")) if name else ()
        if not _BUCKET.fullmatch(bucket) or "%" in name or {".", ".."} & set(segments):
            return None
        return "gs", bucket, segments
    path = uri.removeprefix("file://")
    if not path.startswith("/"):
        return None
    return "file", "", tuple(os.path.realpath(path).split("/")[1:])


def _root(root: str) -> _Location | None:
    """A root: as a location, without the empty segment a trailing '/' leaves."""
    location = _parse(root.rstrip("/") if root.rstrip("/") else root)
    if location is None:
        return None
    scheme, bucket, segments = location
    return scheme, bucket, tuple(s for s in segments if s) if scheme == "file" else segments


def under_roots(path: str, roots: Iterable[str]) -> bool:
    """Whether `path` lies under one of `roots` (by real path for local ones)."""
    location = _parse(path)
    if location is None:
        return False
    for root in roots:
        parsed = _root(root)
        if parsed is None:
            continue
        scheme, bucket, segments = parsed
        if (scheme, bucket) == location[:2] and location[2][:len(segments)] == segments:
            return True
    return False


def parse_roots(text: str | None) -> tuple[str, ...]:
    """The roots a setting lists (comma-separated; blanks ignored). Each must be an absolute
    path without `.` or `..` segments, or gs://BUCKET[/PREFIX]; ValueError naming ENV otherwise."""
    roots = tuple(part.strip() for part in (text or "").split(SEPARATOR) if part.strip())
    for root in roots:
        plain = root.removeprefix("file://")
        local = plain.startswith("/") and not {".", ".."} & set(plain.split("/"))
        if _root(root) is None or not (local or root.startswith("gs://")):
            raise ValueError(f"{ENV}: {root!r} is not an absolute path or a gs://BUCKET/PREFIX URI "
                             f"(no '.' or '..' segments; roots are separated by '{SEPARATOR}')")
    return roots


def refusal(roots: Iterable[str], bundled: Iterable[str] = ()) -> str:
    """The one reason given for a path under no root: names the setting and what it allows, never
    anything about the path itself (whether it exists, where a link leads)."""
    allowed = ", ".join(roots) or "none configured"
    names = ", ".join(bundled)
    return f"not under {ENV} (allowed: {allowed}{'; or a bundled dataset: ' + names if names else ''})"
