"""Loopback ports for what the platform starts itself (its API in tests and demos, Flower's
processes, a test broker): one place that picks them."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1", avoid: frozenset[int] = frozenset({8000})) -> int:
    """A free TCP port on `host` (never 8000, the SuperLink default that clashes with web apps)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in avoid:
            return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True
