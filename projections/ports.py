"""Ports of the read side: the read-model store (documents + checkpoints) and change listeners."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import jsonpatch
import orjson

Doc = dict[str, Any]
Where = Mapping[str, str | int | bool | None]  # top-level field -> the value it must equal
FIELD = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_where(where: Where | None) -> Where:
    """The filter, after checking its field names (they end up in a JSON path or a query key)."""
    for name in where or {}:
        if not FIELD.match(name):
            raise ValueError(f"not a filterable field name: {name!r}")
    return where or {}


@dataclass(frozen=True)
class DocChange:
    """A read-model document changed (doc None = deleted) by the event at `position`. `patch`
    says what changed since the previous version (RFC 6902 JSON Patch operations), worked out
    the first time someone asks (a live subscriber) from the previous version's encoding; None
    when the document is new or deleted."""

    projection: str
    key: str
    position: int
    doc: Doc | None
    before: bytes | None = field(default=None, repr=False, compare=False)
    traceparent: str | None = field(default=None, repr=False, compare=False)  # of the command behind it
    encoded: bytes | None = field(default=None, repr=False, compare=False)  # `doc` as encode_doc gives it, if known
    # what a reader builds from the change once for all (the live streams' frames: each
    # subscriber of a projection sends the same bytes for a change, the document or the patch)
    frames: dict[bool, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    @cached_property
    def patch(self) -> list[dict[str, Any]] | None:
        if self.doc is None or self.before is None:
            return None
        ops: list[dict[str, Any]] = jsonpatch.make_patch(orjson.loads(self.before), self.doc).patch
        return ops

    @cached_property
    def doc_json(self) -> bytes:
        """The document's JSON (`null` when deleted), encoded once for every live subscriber: the
        runner hands over the encoding it committed."""
        if self.encoded is not None:
            return self.encoded
        return b"null" if self.doc is None else encode_doc(self.doc)

    @cached_property
    def patch_json(self) -> bytes | None:
        """`patch` as JSON, encoded once for every live subscriber."""
        patch = self.patch
        return None if patch is None else orjson.dumps(patch)


ChangeListener = Callable[[list[DocChange]], None]


def encode_doc(doc: Doc) -> bytes:
    """A read-model document's JSON: sorted keys, so one document always has one encoding."""
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class Commit:
    """One projection's writes for a batch, and the checkpoint move they come with."""

    projection: str
    changes: Mapping[str, tuple[int, Doc | None]]
    from_checkpoint: int
    to_checkpoint: int
    fence: int | None = None  # the writer's lease token (persistence.ports.Lease)
    # each changed document as JSON with sorted keys (`encode`), for a store that keeps JSON:
    # the runner encodes a document once for its own cache and the store's write
    encoded: Mapping[str, bytes] | None = None


class ReadModelStore(Protocol):
    async def get(self, projection: str, key: str) -> Doc | None: ...

    async def get_json(self, projection: str, key: str) -> bytes | None:
        """The document as JSON, for a query to answer with as it is (a store that keeps JSON
        hands its bytes over instead of decoding them for the caller to encode again)."""
        ...

    async def get_many(self, projection: str, keys: list[str]) -> dict[str, Doc]: ...

    async def list_docs(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[Doc]:
        """Documents ordered by key; with `where`, only those whose top-level fields equal the given
        values (field names are plain identifiers, see FIELD)."""
        ...

    async def list_json(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[bytes]:
        """`list_docs`, each document as JSON (see `get_json`)."""
        ...

    async def count(self, projection: str, where: Where | None = None) -> int: ...

    async def changed_after(self, projection: str, position: int, key: str | None = None) -> list[DocChange]:
        """Current documents last changed by an event after `position`, in position order."""
        ...

    async def get_checkpoint(self, name: str) -> int: ...

    async def set_checkpoint(self, name: str, position: int, fence: int | None = None) -> None:
        """With `fence` (a lease token): FencedOut if a higher token wrote this checkpoint."""
        ...

    async def commit(
        self,
        projection: str,
        changes: Mapping[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
    ) -> bool:
        """Write the documents and move the checkpoint together, only if the checkpoint is still
        `from_checkpoint` (another runner did not get there first). False = nothing written.
        With `fence` (the writer's lease token): persistence.ports.FencedOut, nothing written,
        if a write with a higher token reached this checkpoint before (the lease changed hands).
        """
        ...

    async def commit_many(self, commits: Sequence[Commit]) -> list[bool]:
        """Several `commit`s at once (one transaction where the store has them): each applies
        only if its checkpoint is still its `from_checkpoint`; the answers are in order."""
        ...

    async def drop(self, projection: str) -> None:
        """Delete every document of the projection and reset its checkpoint to 0."""
        ...

    async def dump(self, projection: str) -> dict[str, Doc]: ...

    async def wait_commit_elsewhere(self, timeout: float) -> None:
        """Return when another process (a replica owning the projections) may have committed to
        these read models, or after `timeout` seconds: what a follower waits on between reads of
        the checkpoints."""
        ...

    async def close(self) -> None: ...
