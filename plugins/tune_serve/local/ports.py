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
    """Whether `port` can be bound on the loopback interface now."""
    with socket.socket() as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True
