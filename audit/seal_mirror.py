"""The seal store's copy of every seal, kept by a follower of the feed; and adopting a history
written before seals existed."""

from __future__ import annotations

from typing import Any

from audit.verify import PAGE, verify_store
from persistence.ports import EventStore, SealStore
from persistence.records import RecordedEvent
from persistence.seals import SealRecord, seal_record


class SealMirror:
    """Copies each event's seal (written with the event, in the same transaction) into the seal
    store. A consumer of the feed like any other: after a crash it simply copies the tail the
    previous process did not get to, at the next start, with no operator step."""

    def __init__(self, store: EventStore, seals: SealStore) -> None:
        self.store = store
        self.seals = seals
        self.position = 0

    async def catch_up(self) -> int:
        self.position = await self.seals.head()
        while batch := await self.store.read_all(self.position, PAGE):
            await self._copy(batch)
        return self.position

    async def run(self) -> None:
        await self.catch_up()
        async for batch in self.store.subscribe(self.position, PAGE):
            await self._copy(batch)

    async def _copy(self, batch: list[RecordedEvent]) -> None:
        # Copied as found: a bogus seal (a forged row) fails verification in either place.
        copies = [SealRecord(e.position, e.stream_id, e.version, e.event_id, e.seal) for e in batch if e.seal]
        await self.seals.put(copies)
        self.position = batch[-1].position

    def info(self) -> dict[str, Any]:
        return {"position": self.position}


async def adopt_unsealed(store: EventStore, seals: SealStore, key: bytes) -> int:
    """Seal the events that have no seal (a data dir from before sealing): a trust decision, taken
    only when their hash chain and the feed verify. Returns how many events were sealed."""
    chain = await verify_store(store)
    if not chain.ok:
        raise ValueError(f"the hash chain is broken, nothing sealed: {chain.first_break}")
    adopted, after = 0, 0
    while page := await store.read_all(after, PAGE):
        have = {s.position for s in await seals.range(after, page[-1].position)}
        missing = [seal_record(key, e) for e in page if e.position not in have]
        await seals.put(missing)
        adopted += len(missing)
        after = page[-1].position
    return adopted
