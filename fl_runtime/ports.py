"""Ports the FL runtime needs from the outside: where model artifacts are kept."""

from __future__ import annotations

from typing import Protocol


class ArtifactStore(Protocol):
    """Content-addressed blobs: the key of some bytes is their sha256 (lowercase hex)."""

    async def put(self, data: bytes) -> str:
        """Store the bytes (idempotent) and return their sha256."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`; KeyError if absent."""
        ...

    async def exists(self, sha256: str) -> bool: ...
