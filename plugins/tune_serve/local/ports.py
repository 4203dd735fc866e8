"""Loopback ports for the local backend's processes (the chief, the model servers) and for the
tests and scripts that start private stacks. Standard library only: the trainer and serving
test environments import it too."""
from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def is_free(port: int) -> bool:
    """Whether a server could listen on `port` on the loopback interface now. SO_REUSEADDR as
    servers (uvicorn, gRPC) bind: a port whose last server just died (connections in
    TIME_WAIT) is free for it, one that something listens on is not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True
