"""Property test of the global feed under random interleavings of writers that append, stall or
die between allocating positions and committing, and readers that give holes up at once
(abandon_after_s=0, the most aggressive setting). Whatever the schedule:

* every append that returned is in the feed exactly once, in position order; nothing else is;
* a reader never skipped an event: what it saw between its start and its cursor is exactly the
  final feed there (a late commit below a reader's cursor is impossible), also for a reader
  that resumed from an arbitrary position, possibly inside an allocated range;
* every stream's versions are contiguous from 1 and its hash chain verifies.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mongo_event_store import COMMITS, MongoEventStore
from persistence.chain import GENESIS_HASH, expected_hash
from persistence.records import NewEvent, RecordedEvent
from tests.mongo.standin import MongoTestBackend, Recorder

Writer = tuple[str, int, str, int]  # fate, events, stream, scheduling delay

writers = st.lists(
    st.tuples(
        st.sampled_from(["append", "append", "stall", "die"]),
        st.integers(1, 3),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 12),
    ),
    min_size=1,
    max_size=10,
)


def ev(n: int) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": f"c{n}"}, {})


async def yields(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def scenario(plan: list[Writer], reader_steps: list[int], start: int) -> None:
    backend = MongoTestBackend()
    stores: list[MongoEventStore] = []
    try:
        appended: list[str] = []
        views: list[tuple[int, int, list[RecordedEvent]]] = []  # (start, cursor, events seen)

        async def write(i: int, fate: str, n: int, stream: str, delay: int) -> None:
            recorder = Recorder()
            store = await MongoEventStore(backend.connect(recorder), watch=False).open()
            stores.append(store)
            await yields(delay)
            if fate == "die":  # allocates, then is gone
                await store._allocate(n)
                return
            if fate == "stall":

                async def stall(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                    await yields(delay * 3 + 1)

                recorder.before[(COMMITS, "insert_one")] = stall
            result = await store.append(stream, [ev(k) for k in range(n)], expected_version=None)
            appended.extend(e.event_id for e in result.events)

        async def read(steps: list[int], start: int = 0) -> None:
            store = await MongoEventStore(backend.connect(), abandon_after_s=0, watch=False).open()
            stores.append(store)
            cursor, seen = start, []
            for pause in steps:
                await yields(pause)
                batch = await store.read_all(cursor, 2)
                seen.extend(batch)
                if batch:
                    cursor = batch[-1].position
            views.append((start, cursor, seen))

        await asyncio.gather(
            *(write(i, *w) for i, w in enumerate(plan)),
            read(reader_steps),
            read(list(reversed(reader_steps))),
            read(reader_steps, start),  # resumes from any position, maybe inside an allocation
        )

        final_reader = await MongoEventStore(backend.connect(), abandon_after_s=0, watch=False).open()
        stores.append(final_reader)
        feed: list[RecordedEvent] = []
        while batch := await final_reader.read_all(feed[-1].position if feed else 0, 1000):
            feed.extend(batch)

        assert sorted(e.event_id for e in feed) == sorted(appended)
        positions = [e.position for e in feed]
        assert positions == sorted(set(positions))
        for begin, cursor, seen in views:
            assert [e.event_id for e in seen] == [e.event_id for e in feed if begin < e.position <= cursor]
        for stream in {e.stream_id for e in feed}:
            events = await final_reader.read_stream(stream)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            prev = GENESIS_HASH
            for e in events:
                assert e.prev_hash == prev and e.hash == expected_hash(e)
                prev = e.hash
    finally:
        for store in stores:
            await store.close()
        await backend.drop()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=writers, reader_steps=st.lists(st.integers(0, 8), min_size=1, max_size=12), start=st.integers(0, 6))
def test_feed_is_gap_free_whatever_the_schedule(plan: list[Writer], reader_steps: list[int], start: int) -> None:
    asyncio.run(scenario(plan, reader_steps, start))
