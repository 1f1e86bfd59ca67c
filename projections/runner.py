"""Feeds projections from the global feed. Each projection's checkpoint commits with its writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

from commands.ports import EventStore
from domain.envelope import RecordedEvent
from domain.events import Event
from projections.ports import ChangeListener, Doc, DocChange, ReadModelStore
from projections.projection import Projection

log = logging.getLogger(__name__)


class ProjectionRunner:
    def __init__(
        self,
        read_models: ReadModelStore,
        projections: Sequence[Projection],
        listeners: Sequence[ChangeListener] = (),
    ) -> None:
        self.read_models = read_models
        self.projections = list(projections)
        self.listeners = list(listeners)
        self.position = 0
        self._progress = asyncio.Condition()

    async def low_checkpoint(self) -> int:
        return min([await self.read_models.get_checkpoint(p.name) for p in self.projections], default=0)

    async def apply(self, batch: Sequence[RecordedEvent]) -> None:
        """Apply one batch of the feed to every projection (skipping what each already has)."""
        if not batch:
            return
        decoded: list[tuple[RecordedEvent, Event]] = [(r, r.to_event()) for r in batch]
        for projection in self.projections:
            await self._apply_one(projection, decoded)
        async with self._progress:
            self.position = max(self.position, batch[-1].position)
            self._progress.notify_all()

    async def _apply_one(self, projection: Projection, decoded: list[tuple[RecordedEvent, Event]]) -> None:
        for _attempt in range(3):
            checkpoint = await self.read_models.get_checkpoint(projection.name)
            todo = [(r, ev) for r, ev in decoded if r.position > checkpoint]
            if not todo:
                return
            keyed = [(r, ev, projection.keys(ev)) for r, ev in todo]
            wanted = sorted({k for _, _, keys in keyed for k in keys})
            docs: dict[str, Doc | None] = dict(await self.read_models.get_many(projection.name, wanted))
            changes: dict[str, tuple[int, Doc | None]] = {}
            for recorded, event, keys in keyed:
                for key in keys:
                    doc = projection.apply(docs.get(key), event, recorded)
                    docs[key] = doc
                    changes[key] = (recorded.position, doc)
            if await self.read_models.commit(projection.name, changes, checkpoint, todo[-1][0].position):
                self._notify([DocChange(projection.name, k, pos, doc) for k, (pos, doc) in changes.items()])
                return
            log.info("projection %s: checkpoint moved under us, retrying", projection.name)

    def _notify(self, changes: list[DocChange]) -> None:
        if not changes:
            return
        changes.sort(key=lambda c: c.position)
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a listener must never stop the projection
                log.exception("change listener failed")

    async def catch_up(self, store: EventStore, batch_size: int = 2000) -> int:
        """Apply everything up to the store's head; returns the position reached. The next batch
        is read while the current one is applied."""
        position = await self.low_checkpoint()
        batch = await store.read_all(position, batch_size)
        while batch:
            position = batch[-1].position
            next_batch = asyncio.create_task(store.read_all(position, batch_size))
            try:
                await self.apply(batch)
            except BaseException:
                next_batch.cancel()
                raise
            batch = await next_batch
        return position

    async def run(self, store: EventStore, batch_size: int = 2000) -> None:
        """Follow the feed forever (until cancelled)."""
        await self.catch_up(store, batch_size)
        feed: AsyncIterator[list[RecordedEvent]] = store.subscribe(await self.low_checkpoint(), batch_size)
        async for batch in feed:
            await self.apply(batch)

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Block until the projections have applied `position` (read-your-writes for callers)."""
        async with asyncio.timeout(timeout), self._progress:
            await self._progress.wait_for(lambda: self.position >= position)

    async def rebuild(self, store: EventStore, names: Sequence[str] | None = None, batch_size: int = 5000) -> int:
        """Drop the named projections (all by default) and replay them from position 0."""
        chosen = [p for p in self.projections if names is None or p.name in names]
        for projection in chosen:
            await self.read_models.drop(projection.name)
        return await ProjectionRunner(self.read_models, chosen, self.listeners).catch_up(store, batch_size)
