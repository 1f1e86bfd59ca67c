"""In-process fan-out of read-model changes to live subscribers (SSE connections)."""

from __future__ import annotations

import asyncio
import logging

from projections.ports import DocChange

log = logging.getLogger(__name__)


class LiveHub:
    """Every subscriber gets its own bounded queue. A subscriber that falls too far behind is
    disconnected (its queue gets None); it reconnects with Last-Event-ID and catches up from
    the read models, so nothing is lost and a slow client cannot stall the projections."""

    def __init__(self, max_queue: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[DocChange | None]] = set()
        self._max_queue = max_queue

    def subscribe(self) -> asyncio.Queue[DocChange | None]:
        q: asyncio.Queue[DocChange | None] = asyncio.Queue(self._max_queue)
        self._subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[DocChange | None]) -> None:
        self._subscribers.discard(q)

    def publish(self, changes: list[DocChange]) -> None:
        for q in list(self._subscribers):
            try:
                for change in changes:
                    q.put_nowait(change)
            except asyncio.QueueFull:
                log.warning("live subscriber too slow; disconnecting it")
                self._subscribers.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
