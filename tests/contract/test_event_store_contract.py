"""The event store contract: every adapter must pass these unchanged."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from persistence.chain import GENESIS_HASH, expected_hash
from persistence.ports import ConcurrencyError, EventStore, IdempotencyKeyReused
from persistence.records import NewEvent
from tests.contract.conftest import StoreFactory


def ev(n: int = 0, **data: object) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": f"c{n}", **data}, {"actor": "t"})


async def test_append_and_read_stream(store: EventStore) -> None:
    r = await store.append("job-a", [ev(1), ev(2)], expected_version=0)
    assert r.version == 2 and [e.version for e in r.events] == [1, 2]
    events = await store.read_stream("job-a")
    assert [e.data["client_id"] for e in events] == ["c1", "c2"]
    assert events[0].metadata["actor"] == "t" and events[0].metadata["recorded_at"]
    assert await store.stream_version("job-a") == 2
    assert await store.stream_version("job-none") == 0
    assert await store.read_stream("job-none") == []


async def test_read_stream_from_and_to_version(store: EventStore) -> None:
    await store.append("s", [ev(i) for i in range(5)], expected_version=0)
    assert [e.version for e in await store.read_stream("s", from_version=3)] == [3, 4, 5]
    assert [e.version for e in await store.read_stream("s", 2, 3)] == [2, 3]


async def test_expected_version_mismatch_raises_and_appends_nothing(store: EventStore) -> None:
    await store.append("s", [ev(1)], expected_version=0)
    with pytest.raises(ConcurrencyError) as info:
        await store.append("s", [ev(2)], expected_version=0)
    assert info.value.actual == 1 and info.value.expected == 0
    with pytest.raises(ConcurrencyError):
        await store.append("s", [ev(3)], expected_version=5)
    assert len(await store.read_stream("s")) == 1
    assert await store.head_position() == 1


async def test_any_version_appends(store: EventStore) -> None:
    await store.append("s", [ev(1)], expected_version=None)
    r = await store.append("s", [ev(2)], expected_version=None)
    assert r.version == 2


async def test_concurrent_appends_same_expected_version_exactly_one_wins(store: EventStore) -> None:
    await store.append("s", [ev(0)], expected_version=0)
    results = await asyncio.gather(
        *(store.append("s", [ev(i)], expected_version=1) for i in range(20)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, ConcurrencyError) for r in losses)
    assert await store.stream_version("s") == 2


async def test_two_store_instances_on_one_location_conflict_cleanly(store_factory: StoreFactory) -> None:
    a, b = await store_factory(), await store_factory()
    await a.append("s", [ev(0)], expected_version=0)
    with pytest.raises(ConcurrencyError):
        await b.append("s", [ev(1)], expected_version=0)
    await b.append("s", [ev(1)], expected_version=1)
    assert [e.version for e in await a.read_stream("s")] == [1, 2]


async def test_idempotency_key_returns_original_result(store: EventStore) -> None:
    first = await store.append("s", [ev(1), ev(2)], expected_version=0, idempotency_key="k")
    again = await store.append("s", [ev(3)], expected_version=0, idempotency_key="k")
    assert again.duplicate and again.version == first.version == 2
    assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
    assert len(await store.read_stream("s")) == 2
    found = await store.find_idempotent("k")
    assert found is not None and [e.position for e in found.events] == [1, 2]
    assert await store.find_idempotent("other") is None
    with pytest.raises(IdempotencyKeyReused):
        await store.append("other-stream", [ev(4)], expected_version=None, idempotency_key="k")


async def test_concurrent_retries_with_one_key_append_once(store: EventStore) -> None:
    results = await asyncio.gather(
        *(store.append("s", [ev(i)], expected_version=None, idempotency_key="same") for i in range(10))
    )
    assert sum(not r.duplicate for r in results) == 1
    assert len(await store.read_stream("s")) == 1


async def test_hash_chain_links_every_event(store: EventStore) -> None:
    await store.append("s", [ev(1), ev(2)], expected_version=0)
    await store.append("t", [ev(9)], expected_version=0)
    await store.append("s", [ev(3)], expected_version=2)
    events = await store.read_stream("s")
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    for e in events:
        assert e.hash == expected_hash(e)
    (t,) = await store.read_stream("t")
    assert t.prev_hash == GENESIS_HASH


async def test_global_feed_positions_are_contiguous_and_ordered(store: EventStore) -> None:
    for i in range(5):
        await store.append(f"s{i % 2}", [ev(i), ev(i + 100)], expected_version=None)
    feed = await store.read_all(0, 1000)
    assert [e.position for e in feed] == list(range(1, 11))
    assert [e.position for e in await store.read_all(4, 3)] == [5, 6, 7]
    assert await store.head_position() == 10


async def test_many_concurrent_writers_reader_sees_every_position_once_in_order(store: EventStore) -> None:
    writers, per_writer = 16, 25
    seen: list[int] = []
    total = writers * per_writer * 2

    async def reader() -> None:
        async for batch in store.subscribe(0, batch_size=7):
            seen.extend(e.position for e in batch)
            if len(seen) >= total:
                return

    async def writer(w: int) -> None:
        for i in range(per_writer):
            await store.append(f"stream-{w}", [ev(i), ev(i + 1000)], expected_version=None)

    task = asyncio.create_task(reader())
    await asyncio.gather(*(writer(w) for w in range(writers)))
    await asyncio.wait_for(task, timeout=30)
    assert seen == list(range(1, total + 1))
    for w in range(writers):
        assert [e.version for e in await store.read_stream(f"stream-{w}")] == list(range(1, per_writer * 2 + 1))


async def test_subscribe_wakes_on_commit(store: EventStore) -> None:
    got: asyncio.Queue[int] = asyncio.Queue()

    async def follow() -> None:
        async for batch in store.subscribe(0):
            for e in batch:
                await got.put(e.position)

    task = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0)
        await store.append("s", [ev(1)], expected_version=0)
        assert await asyncio.wait_for(got.get(), timeout=5) == 1
        await store.append("s", [ev(2)], expected_version=1)
        assert await asyncio.wait_for(got.get(), timeout=5) == 2
    finally:
        task.cancel()


async def test_subscribe_from_a_position_resumes_there(store: EventStore) -> None:
    await store.append("s", [ev(i) for i in range(4)], expected_version=0)
    it = store.subscribe(2).__aiter__()
    batch = await asyncio.wait_for(it.__anext__(), timeout=5)
    assert [e.position for e in batch] == [3, 4]


async def test_events_decode_to_domain_events(store: EventStore) -> None:
    await store.append("job-j", [ev(1)], expected_version=0)
    (e,) = await store.read_stream("job-j")
    decoded = e.to_event()
    assert decoded.type == "ClientJoined"
