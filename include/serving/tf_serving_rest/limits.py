"""The request body cap: a body over `--max-request-bytes` is answered 413 and never held.

Real TF Serving sets no REST body limit (its libevent server is created without
evhttp_set_max_body_size, and ProcessRequest appends the whole body into one string), so there
is no TF Serving number or message to copy. The answer keeps TF Serving's error shape,
`{"error": "..."}`, with HTTP's own status for the case, 413 Content Too Large (TF Serving's
RESOURCE_EXHAUSTED would map to 429, which tells a client to retry the same body). FastAPI's
own `max_body_size` is not used: it answers `{"detail": ...}`.

The default, 16 MiB, is four times gRPC's default message limit (4 MiB, what a TF Serving
client meets over gRPC) and far above what a deployer's smoke test or a tabular batch sends;
JSON decoding takes several times the body in memory, so it bounds a request to a few
hundred MB at worst.
"""
from __future__ import annotations

import json
from typing import Any

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
FLAG = "--max-request-bytes"

Message = dict[str, Any]


class RequestBodyCap:
    """ASGI middleware: a declared Content-Length over the cap is refused before any byte is
    read; a body without one (chunked) is counted as it arrives and refused once over.

    Answering before the body is read is safe for clients: urllib3 2 and curl read the early
    response, and uvicorn closes the connection after it. Under the cap the body read here is
    replayed to the app as one message, so nothing downstream reads the socket again.
    """

    def __init__(self, app, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"Request body is {declared} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send, f"Request body is over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, send, what: str) -> None:
        content = json.dumps({"error": f"{what}; this server accepts at most {self.max_bytes} ({FLAG})"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": content})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn (h11) already refuses a malformed length with 400
    return None


def _replay(messages: list[Message], receive):
    """`receive` that yields `messages` first, then the connection's own (a later disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
