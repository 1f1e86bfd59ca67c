"""Ports of the read side: the read-model store (documents + checkpoints) and change listeners."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class DocChange:
    """A read-model document changed (doc None = deleted) by the event at `position`."""

    projection: str
    key: str
    position: int
    doc: Doc | None


ChangeListener = Callable[[list[DocChange]], None]


class ReadModelStore(Protocol):
    async def get(self, projection: str, key: str) -> Doc | None: ...

    async def get_many(self, projection: str, keys: list[str]) -> dict[str, Doc]: ...

    async def list_docs(self, projection: str, limit: int = 100, offset: int = 0) -> list[Doc]:
        """Documents ordered by key."""
        ...

    async def count(self, projection: str) -> int: ...

    async def changed_after(self, projection: str, position: int, key: str | None = None) -> list[DocChange]:
        """Current documents last changed by an event after `position`, in position order."""
        ...

    async def get_checkpoint(self, name: str) -> int: ...

    async def set_checkpoint(self, name: str, position: int) -> None: ...

    async def commit(
        self, projection: str, changes: Mapping[str, tuple[int, Doc | None]], from_checkpoint: int, to_checkpoint: int
    ) -> bool:
        """Write the documents and move the checkpoint together, only if the checkpoint is still
        `from_checkpoint` (another runner did not get there first). False = nothing written."""
        ...

    async def drop(self, projection: str) -> None:
        """Delete every document of the projection and reset its checkpoint to 0."""
        ...

    async def dump(self, projection: str) -> dict[str, Doc]: ...

    async def close(self) -> None: ...
