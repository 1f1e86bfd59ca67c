"""An EventStore decorator that seals every appended event (HMAC under a key outside the store)
before the append returns. Everything else passes through to the wrapped store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from commands.ports import AppendResult, EventStore, SealStore
from domain.audit import seal_record
from domain.envelope import NewEvent, RecordedEvent

log = logging.getLogger(__name__)


class SealingEventStore:
    def __init__(self, inner: EventStore, seals: SealStore, key: bytes) -> None:
        self.inner = inner
        self.seals = seals
        self._key = key
        self._inflight: set[asyncio.Future[None]] = set()

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight.add(done)  # registered before the events become visible: see settle()
        try:
            result = await self.inner.append(stream_id, events, expected_version, idempotency_key)
            if result.events and not result.duplicate:
                try:
                    await self.seals.put([seal_record(self._key, e) for e in result.events])
                except Exception:  # the events are stored; `flp audit verify` will report them unsealed
                    first, last = result.events[0].position, result.events[-1].position
                    log.exception("sealing events %s..%s failed", first, last)
            return result
        finally:
            self._inflight.discard(done)
            done.set_result(None)

    async def settle(self) -> None:
        """Wait until every append in flight has its seals written (verification then sees no
        event that is committed but not yet sealed)."""
        if self._inflight:
            await asyncio.gather(*self._inflight)

    async def find_idempotent(self, idempotency_key: str) -> AppendResult | None:
        return await self.inner.find_idempotent(idempotency_key)

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        return await self.inner.read_stream(stream_id, from_version, to_version)

    async def stream_version(self, stream_id: str) -> int:
        return await self.inner.stream_version(stream_id)

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return await self.inner.read_all(after_position, limit)

    async def head_position(self) -> int:
        return await self.inner.head_position()

    def subscribe(self, after_position: int = 0, batch_size: int = 1000) -> AsyncIterator[list[RecordedEvent]]:
        return self.inner.subscribe(after_position, batch_size)

    async def close(self) -> None:
        await self.inner.close()
        await self.seals.close()

    def __getattr__(self, name: str) -> object:  # adapter-specific extras (e.g. `path`) of the wrapped store
        return getattr(self.inner, name)
