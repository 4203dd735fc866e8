"""A read-only viewer of run artifacts, mounted in Airflow's API server at /tune-serve.

Who may look: a plugin's FastAPI app gets no authentication from Airflow, so every route here
asks Airflow's own auth manager, exactly as the core API does before it shows a task's logs:
GET on the task logs of DAG `tune_train_serve`. The caller is the bearer token of an API client
or the `_token` cookie the Airflow UI keeps after login (what a browser sends when a user
follows a task link); no token answers 401, a user without that access 403.

What is served: only what lies under the storage root. The URI is parsed once into scheme,
bucket and a normalised path; it must have the root's scheme and bucket and the root's path
components as its own first components. A local path is also resolved through symlinks, and
what is opened is the path that was checked, never the string that came in.

How: stored files are untrusted (anyone who can write to the bucket can put an HTML file
there), so every response forbids scripts, plugins, forms and loads from elsewhere
(`Content-Security-Policy: sandbox ...`; the evaluation report needs none of them) and
content sniffing. Files are streamed, never read whole.
"""
from __future__ import annotations

import html
import logging
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.sdk import ObjectStoragePath
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response, StreamingResponse

from tune_serve import config
from tune_serve.config import DAG_ID

log = logging.getLogger(__name__)

# The access Airflow requires to read a task's logs of the DAG (core API: GET .../logs/...).
require_task_log_access = requires_access_dag("GET", DagAccessEntity.TASK_LOGS, param_dag_id=DAG_ID)

# No OpenAPI or docs pages: those would be routes outside the dependency below.
app = FastAPI(title="tune_serve artifacts", description="Run artifacts of tune_train_serve",
              dependencies=[Depends(require_task_log_access)], docs_url=None, redoc_url=None,
              openapi_url=None)

# Scripts, forms, plugins and the page's own origin are taken away (sandbox); nothing is loaded
# from anywhere; inline styles and the report's inline SVG still render.
CONTENT_SECURITY_POLICY = ("sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                           "form-action 'none'; base-uri 'none'; frame-ancestors 'self'")
_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json",
          ".txt": "text/plain; charset=utf-8"}
_CHUNK = 1 << 20
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.S)


@app.middleware("http")
async def _untrusted_content_headers(request: Request, call_next):
    try:
        response = await call_next(request)
    except Exception:  # still an answer with the headers below, never the server's bare 500
        log.exception("artifact viewer: %s failed", request.url.path)
        response = PlainTextResponse("internal error; the API server's log says why", status_code=500)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@dataclass(frozen=True)
class Location:
    """A parsed URI: local paths and file:// URIs have scheme "file" and no bucket."""

    scheme: str
    bucket: str
    path: PurePosixPath  # absolute, `.`, `..` and repeated `/` resolved

    @property
    def uri(self) -> str:
        return str(self.path) if self.scheme == "file" else f"{self.scheme}://{self.bucket}{self.path}"

    def contains(self, other: Location) -> bool:
        """By path components: /a/b contains /a/b/c, not /a/bc."""
        n = len(self.path.parts)
        return ((other.scheme, other.bucket) == (self.scheme, self.bucket)
                and other.path.parts[:n] == self.path.parts)


def parse(uri: str, field: str = "uri") -> Location:
    """`uri` as an absolute local path, a file:// URI or scheme://bucket/path; only a scheme at
    the very start counts (`/root/runs/a://..` is a local path with a component `a:`)."""
    if "\x00" in uri:
        raise ValueError(f"{field} contains a NUL byte")
    match = _SCHEME.fullmatch(uri)
    if match:
        scheme, rest = match.group(1).lower(), match.group(2)
        bucket, _, path = rest.partition("/")
        if scheme == "file":
            if bucket not in ("", "localhost"):
                raise ValueError(f"{field}: a file:// URI names no host other than localhost, got {uri!r}")
            bucket = ""
        elif not bucket:
            raise ValueError(f"{field}: {scheme}:// needs a bucket, got {uri!r}")
        elif "%" in path:
            # Object stores may decode it again; run ids and artifact names never contain it.
            raise ValueError(f"{field}: percent signs are not allowed in an object path, got {uri!r}")
        path = "/" + path
    elif uri.startswith("/"):
        scheme, bucket, path = "file", "", uri
    else:
        raise ValueError(f"{field} must be an absolute path, a file:// URI or scheme://bucket/path, "
                         f"got {uri!r}")
    normalised = "/" + posixpath.normpath(path).lstrip("/")
    return Location(scheme, bucket, PurePosixPath(normalised))


def resolve(uri: str) -> tuple[Location, Path | ObjectStoragePath]:
    """`uri` parsed, and the artifact it names if it lies under the storage root: 400 for
    what is no URI, 403 for anything outside the root."""
    try:
        root = parse(config.storage_root(), "storage root")
    except ValueError as e:
        raise HTTPException(500, f"the storage root setting is invalid: {e}") from None
    try:
        location = parse(uri)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    outside = HTTPException(403, f"only artifacts under the storage root {root.uri} are served")
    if not root.contains(location):
        raise outside
    if location.scheme != "file":
        return location, ObjectStoragePath(location.uri)
    # Symlinks are followed here, once; the real path is what gets opened.
    real, real_root = Path(os.path.realpath(location.path)), Path(os.path.realpath(root.path))
    if not real.is_relative_to(real_root):
        raise outside
    return location, real


@app.get("/artifacts")
def artifact(uri: str) -> Response:
    location, path = resolve(uri)
    shown = location.uri
    if not _exists(path):
        raise HTTPException(404, f"no artifact at {shown}")
    if path.is_dir():
        return _listing(path, shown)
    media = _TYPES.get(path.suffix)
    if media is None:
        return PlainTextResponse(f"{shown}: binary artifact, {path.stat().st_size} bytes")
    if isinstance(path, Path):
        return FileResponse(path, media_type=media)
    return StreamingResponse(_chunks(path), media_type=media)


def _exists(path: Path | ObjectStoragePath) -> bool:
    """Whether it is there; a name the file system cannot even look up (a component over its
    limit, ENAMETOOLONG) is not there either."""
    try:
        return path.exists()
    except OSError:
        return False


def _chunks(path: ObjectStoragePath):
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def _listing(path: Path | ObjectStoragePath, shown: str) -> HTMLResponse:
    children: list[Path | ObjectStoragePath] = sorted(path.iterdir(), key=lambda c: c.name)
    rows = "".join(
        f'<li><a href="artifacts?uri={quote(shown.rstrip("/") + "/" + child.name, safe="")}">'
        f"{html.escape(child.name)}{'/' if child.is_dir() else ''}</a></li>"
        for child in children)
    hint = (f"<p>Open in TensorBoard: <code>tensorboard --logdir {html.escape(shown)}</code></p>"
            if path.name == "logs" else "")
    return HTMLResponse(f"<h3>{html.escape(shown)}</h3>{hint}<ul>{rows}</ul>")
