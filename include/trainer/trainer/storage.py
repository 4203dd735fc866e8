"""URI helpers: a local path or a remote URI (gs://…) read and written alike.

Local paths use the standard library; remote URIs go through tf.io.gfile, imported on
first use. Keeping TensorFlow out of local file checks lets a step reject bad input in
a second instead of after TensorFlow's import.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import uuid


def is_remote(uri: str) -> bool:
    return "://" in uri


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def exists(uri: str) -> bool:
    return _gfile().exists(uri) if is_remote(uri) else os.path.exists(uri)


def isdir(uri: str) -> bool:
    return _gfile().isdir(uri) if is_remote(uri) else os.path.isdir(uri)


def size(uri: str) -> int:
    return _gfile().stat(uri).length if is_remote(uri) else os.path.getsize(uri)


def open_file(uri: str, mode: str = "rb"):
    """A file object (seekable when reading), e.g. for pandas or pyarrow."""
    return _gfile().GFile(uri, mode) if is_remote(uri) else open(uri, mode)


def read_text(uri: str) -> str:
    with open_file(uri, "r") as f:
        return f.read()


def write_text(uri: str, text: str) -> None:
    """Write through a temporary name, so a reader never sees half a file."""
    if not is_remote(uri):  # object stores have no directories to create
        os.makedirs(os.path.dirname(os.path.abspath(uri)), exist_ok=True)
    tmp = temp_name(uri)
    with open_file(tmp, "w") as f:
        f.write(text)
    rename(tmp, uri)


def makedirs(uri: str) -> None:
    _gfile().makedirs(uri) if is_remote(uri) else os.makedirs(uri, exist_ok=True)


def rmtree(uri: str) -> None:
    if not exists(uri):
        return
    _gfile().rmtree(uri) if is_remote(uri) else shutil.rmtree(uri)


def remove(uri: str) -> None:
    if exists(uri):
        _gfile().remove(uri) if is_remote(uri) else os.remove(uri)


def rename(src: str, dst: str, overwrite: bool = True) -> None:
    """Atomic on a local filesystem; on GCS a copy-then-delete per object (not atomic)."""
    if isdir(src) and overwrite:
        rmtree(dst)  # neither API replaces a directory in one call
    if is_remote(src):
        _gfile().rename(src, dst, overwrite=overwrite)
    elif overwrite:
        os.replace(src, dst)
    elif os.path.exists(dst):
        raise FileExistsError(dst)
    else:
        os.rename(src, dst)


def copytree(src: str, dst: str) -> None:
    """Copy a directory tree (e.g. a SavedModel) between any two filesystems."""
    if not is_remote(src) and not is_remote(dst):
        shutil.copytree(src, dst, dirs_exist_ok=True)
        return
    gfile = _gfile()
    for dirpath, _, filenames in gfile.walk(src):
        rel = posixpath.relpath(dirpath.replace("\\", "/"), src.replace("\\", "/"))
        target = dst if rel == "." else join(dst, rel)
        gfile.makedirs(target)
        for name in filenames:
            gfile.copy(join(dirpath, name), join(target, name), overwrite=True)


def replace_dir(tmp: str, final: str) -> None:
    """Publish the finished directory `tmp` as `final`, replacing an older `final`.

    The old tree is moved aside first and only deleted once the new one is in place,
    so a crash in between leaves the old or the new tree (or the old one aside), never a mix."""
    old = None
    if exists(final):
        old = f"{temp_name(final)}-old"
        rename(final, old, overwrite=False)
    try:
        rename(tmp, final, overwrite=False)
    except BaseException:
        if old is not None:
            rename(old, final, overwrite=False)
        raise
    if old is not None:
        rmtree(old)


def remove_stale_temps(uri: str) -> None:
    """Delete `{uri}.tmp-*` left behind by an earlier attempt that was killed mid-write."""
    if is_remote(uri):
        paths = _gfile().glob(f"{uri.rstrip('/')}.tmp-*")
    else:
        import glob

        paths = glob.glob(f"{glob.escape(uri.rstrip('/'))}.tmp-*")
    for path in paths:
        rmtree(path) if isdir(path) else remove(path)


def temp_name(uri: str) -> str:
    """A sibling name unique to this writer: `{uri}.tmp-{random}`."""
    return f"{uri.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"
