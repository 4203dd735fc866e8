"""A read-only viewer of run artifacts, mounted in Airflow's API server at /tune-serve.

Only what lies under the storage root is served (an evaluation report, a directory
listing of TensorBoard logs), so a link can never be bent into reading other files.
"""
from __future__ import annotations

import html
from urllib.parse import quote

from airflow.sdk import ObjectStoragePath
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from tune_serve import config

app = FastAPI(title="tune_serve artifacts", description="Run artifacts of tune_train_serve")

_TYPES = {".html": "text/html", ".json": "application/json", ".txt": "text/plain"}


def _path(uri: str) -> ObjectStoragePath:
    return ObjectStoragePath(uri if "://" in uri else f"file://{uri}")


def resolve(uri: str) -> ObjectStoragePath:
    """`uri` as a path, if it lies under the storage root (after resolving `..`)."""
    root = config.storage_root().rstrip("/")
    if "://" not in uri:
        import os.path

        uri = os.path.realpath(uri)
        root = os.path.realpath(root)
    if not (uri == root or uri.startswith(root + "/")):
        raise HTTPException(403, f"only artifacts under the storage root {root} are served")
    return _path(uri)


@app.get("/artifacts")
def artifact(uri: str) -> Response:
    path = resolve(uri)
    if not path.exists():
        raise HTTPException(404, f"no artifact at {uri}")
    if path.is_dir():
        rows = "".join(
            f'<li><a href="artifacts?uri={quote(uri.rstrip("/") + "/" + child.name, safe="")}">'
            f"{html.escape(child.name)}{'/' if child.is_dir() else ''}</a></li>"
            for child in sorted(path.iterdir(), key=lambda c: c.name))
        hint = (f"<p>Open in TensorBoard: <code>tensorboard --logdir {html.escape(uri)}</code></p>"
                if path.name == "logs" else "")
        return HTMLResponse(f"<h3>{html.escape(uri)}</h3>{hint}<ul>{rows}</ul>")
    media = _TYPES.get(path.suffix)
    if media is None:
        return PlainTextResponse(f"{uri}: binary artifact, {path.stat().st_size} bytes")
    return Response(path.read_bytes(), media_type=media)
