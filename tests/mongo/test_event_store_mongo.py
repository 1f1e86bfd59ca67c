"""MongoDB event store beyond the shared contract: the counter + safe high-water-mark scheme under
crashes, pauses and lost replies, and many "processes" (connections) writing and reading at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import ReturnDocument
from pymongo.errors import AutoReconnect, DocumentTooLarge

from adapters.mongo_event_store import COMMITS, COUNTERS, POSITION_COUNTER, MongoEventStore
from persistence import encoding
from persistence.chain import GENESIS_HASH, expected_hash
from persistence.encoding import UnstorableEvent
from persistence.ports import ConcurrencyError
from persistence.records import NewEvent, RecordedEvent
from tests.mongo.standin import MongoTestBackend, Recorder


def ev(n: int = 0) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": f"c{n}"}, {"actor": "t"})


async def open_store(backend: MongoTestBackend, recorder: Recorder | None = None, **options: Any) -> MongoEventStore:
    return await MongoEventStore(backend.connect(recorder), **options).open()


async def crashed_writer_allocates(backend: MongoTestBackend, n: int) -> int:
    """What a writer does before it dies: take n positions from the counter, commit nothing."""
    counter = await backend.database()[COUNTERS].find_one_and_update(
        {"_id": POSITION_COUNTER}, {"$inc": {"seq": n}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    return int(counter["seq"])


async def stored(backend: MongoTestBackend) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = await backend.database()[COMMITS].find({}, sort=[("_id", 1)]).to_list(None)
    return docs


def check_stream(events: list[RecordedEvent]) -> None:
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    prev = GENESIS_HASH
    for e in events:
        assert e.prev_hash == prev and e.hash == expected_hash(e)
        prev = e.hash


async def test_reader_does_not_read_past_a_position_allocated_but_uncommitted(backend: MongoTestBackend) -> None:
    store = await open_store(backend, abandon_after_s=3600)
    try:
        await crashed_writer_allocates(backend, 3)  # positions 1..3 in flight
        committed = await store.append("s", [ev(1)], expected_version=0)
        assert [e.position for e in committed.events] == [4]
        assert await store.read_all(0) == []  # 4 is committed, but 1..3 might still commit
        assert await store.head_position() == 0
    finally:
        await store.close()


async def test_crashed_writers_range_is_marked_abandoned_and_readers_move_on(backend: MongoTestBackend) -> None:
    writer = await open_store(backend)
    reader = await open_store(backend, abandon_after_s=0.2, poll_s=0.05)
    try:
        await crashed_writer_allocates(backend, 3)
        await writer.append("s", [ev(1)], expected_version=0)
        feed = reader.subscribe(0)
        batch = await asyncio.wait_for(anext(feed), timeout=30)
        assert [(e.position, e.version) for e in batch] == [(4, 1)]
        docs = await stored(backend)
        assert [(d["_id"], d["last_position"], d.get("abandoned", False)) for d in docs] == [
            (1, 1, True),
            (2, 2, True),
            (3, 3, True),
            (4, 4, False),
        ]
        assert await reader.head_position() == 4
        assert [e.position for e in await writer.read_all(0)] == [4]  # markers are stepped over
    finally:
        await writer.close()
        await reader.close()


async def test_late_commit_below_a_visible_one_is_not_skipped(backend: MongoTestBackend, recorder: Recorder) -> None:
    slow = await open_store(backend, recorder)
    fast = await open_store(backend)
    reader = await open_store(backend, abandon_after_s=3600)
    allocated, release = asyncio.Event(), asyncio.Event()

    async def pause_insert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        allocated.set()
        await release.wait()

    recorder.before[(COMMITS, "insert_one")] = pause_insert
    try:
        late = asyncio.create_task(slow.append("a", [ev(1)], expected_version=0))
        await allocated.wait()  # the slow writer holds position 1
        await fast.append("b", [ev(2)], expected_version=0)  # position 2 commits first
        assert await reader.read_all(0) == []
        release.set()
        assert [e.position for e in (await late).events] == [1]
        assert [(e.stream_id, e.position) for e in await reader.read_all(0)] == [("a", 1), ("b", 2)]
    finally:
        release.set()
        for s in (slow, fast, reader):
            await s.close()


async def test_slow_writer_whose_slot_was_given_up_retries_with_new_positions(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    slow = await open_store(backend, recorder)
    reader = await open_store(backend, abandon_after_s=0)
    allocated, release = asyncio.Event(), asyncio.Event()

    async def pause_first_insert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not allocated.is_set():
            allocated.set()
            await release.wait()

    recorder.before[(COMMITS, "insert_one")] = pause_first_insert
    try:
        late = asyncio.create_task(slow.append("s", [ev(1), ev(2)], expected_version=0))
        await allocated.wait()  # holds positions 1..2
        assert await reader.read_all(0) == []  # gives position 1 up at once (abandon_after_s=0)
        release.set()
        result = await late
        assert [(e.position, e.version) for e in result.events] == [(3, 1), (4, 2)]
        docs = await stored(backend)
        assert [(d["_id"], d["last_position"], d.get("abandoned", False)) for d in docs] == [
            (1, 1, True),
            (2, 2, True),
            (3, 4, False),
        ]
        feed = await reader.read_all(0)
        assert [e.event_id for e in feed] == [e.event_id for e in result.events]
    finally:
        release.set()
        await slow.close()
        await reader.close()


async def test_lost_reply_after_the_insert_counts_as_committed_once(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    store = await open_store(backend, recorder)
    failed = False

    async def lose_reply(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal failed
        if not failed:
            failed = True
            raise AutoReconnect("connection closed after the write")

    recorder.after[(COMMITS, "insert_one")] = lose_reply
    try:
        result = await store.append("s", [ev(1)], expected_version=0)
        assert failed and result.version == 1 and [e.position for e in result.events] == [1]
        docs = await stored(backend)
        assert [(d["_id"], d.get("abandoned", False)) for d in docs] == [(1, False)]
        assert [e.event_id for e in await store.read_stream("s")] == [result.events[0].event_id]
    finally:
        await store.close()


async def test_insert_that_never_reached_the_server_is_retried_once(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    store = await open_store(backend, recorder)
    failed = False

    async def fail_before(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal failed
        if not failed:
            failed = True
            raise AutoReconnect("connection refused")

    recorder.before[(COMMITS, "insert_one")] = fail_before
    try:
        result = await store.append("s", [ev(1)], expected_version=0)
        assert [(e.position, e.version) for e in result.events] == [(2, 1)]
        docs = await stored(backend)
        assert [(d["_id"], d.get("abandoned", False)) for d in docs] == [(1, True), (2, False)]
        assert [e.position for e in await store.read_all(0)] == [2]
    finally:
        await store.close()


async def test_duplicate_event_id_is_rejected(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        first = ev(1)
        await store.append("s", [first], expected_version=0)
        with pytest.raises(ValueError, match="already stored"):
            await store.append("t", [first], expected_version=0)
        assert await store.stream_version("t") == 0
    finally:
        await store.close()


async def test_many_connections_one_stream_exactly_one_append_per_expected_version(backend: MongoTestBackend) -> None:
    stores = [await open_store(backend) for _ in range(4)]
    try:
        for expected in range(8):
            results = await asyncio.gather(
                *(stores[i % 4].append("hot", [ev(i)], expected_version=expected) for i in range(12)),
                return_exceptions=True,
            )
            wins = [r for r in results if not isinstance(r, BaseException)]
            assert len(wins) == 1, results
            assert all(isinstance(r, ConcurrencyError) for r in results if isinstance(r, BaseException))
        events = await stores[0].read_stream("hot")
        check_stream(events)
        assert len(events) == 8
    finally:
        for s in stores:
            await s.close()


async def test_many_connections_writing_reader_sees_every_event_once_in_order(backend: MongoTestBackend) -> None:
    writers = [await open_store(backend) for _ in range(3)]
    reader = await open_store(backend, poll_s=0.05)
    per_task, tasks = 15, 9
    written: list[str] = []

    async def write(t: int) -> None:
        store = writers[t % len(writers)]
        stream = f"shared-{t % 2}" if t % 3 else f"own-{t}"  # contended and uncontended streams
        for i in range(per_task):
            while True:
                version = await store.stream_version(stream)
                try:
                    r = await store.append(stream, [ev(i), ev(i + 100)], expected_version=version)
                except ConcurrencyError:
                    continue
                written.extend(e.event_id for e in r.events)
                break

    seen: list[RecordedEvent] = []
    total = per_task * tasks * 2

    async def follow() -> None:
        async for batch in reader.subscribe(0, batch_size=5):
            seen.extend(batch)
            if len(seen) >= total:
                return

    try:
        follower = asyncio.create_task(follow())
        await asyncio.gather(*(write(t) for t in range(tasks)))
        await asyncio.wait_for(follower, timeout=60)
        positions = [e.position for e in seen]
        assert positions == sorted(set(positions))  # strictly increasing: in order, none twice
        assert sorted(e.event_id for e in seen) == sorted(written) and len(seen) == total
        for stream in {e.stream_id for e in seen}:
            check_stream(await reader.read_stream(stream))
        assert await reader.head_position() == positions[-1]
    finally:
        for s in (*writers, reader):
            await s.close()


async def test_indexes_are_created_idempotently(backend: MongoTestBackend) -> None:
    a = await open_store(backend)
    b = await open_store(backend)  # a second start-up creates nothing new and fails on nothing
    try:
        info = await backend.database()[COMMITS].index_information()
        unique = {name: spec.get("unique", False) for name, spec in info.items()}
        assert unique == {
            "_id_": False,
            "stream_version_unique": True,
            "last_position_unique": True,
            "idempotency_key_unique": True,
            "event_id_unique": True,
        }
        assert info["stream_version_unique"]["key"] == [("stream_id", 1), ("first_version", 1)]
        assert info["event_id_unique"]["partialFilterExpression"] == {"stream_id": {"$exists": True}}
    finally:
        await a.close()
        await b.close()


async def test_safe_high_water_mark_hint_survives_a_restart(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    await store.append("s", [ev(1), ev(2)], expected_version=0)
    assert await store.head_position() == 2
    await store.close()
    hint = await backend.database()[COUNTERS].find_one({"_id": "safe_hwm"})
    assert hint is not None and (hint["position"], hint["head_event"]) == (2, 2)
    again = await open_store(backend)
    try:
        await again.append("s", [ev(3)], expected_version=2)
        assert await again.head_position() == 3
    finally:
        await again.close()


async def test_reader_starting_inside_an_uncommitted_range_never_gives_part_of_it_up(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    slow = await open_store(backend, recorder)
    reader = await open_store(backend, abandon_after_s=0)  # would give a range start up at once
    allocated, release = asyncio.Event(), asyncio.Event()

    async def pause_insert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        allocated.set()
        await release.wait()

    recorder.before[(COMMITS, "insert_one")] = pause_insert
    try:
        late = asyncio.create_task(slow.append("s", [ev(1), ev(2), ev(3)], expected_version=0))
        await allocated.wait()  # positions 1..3 allocated, not committed
        assert await reader.read_all(1) == []  # 2 is inside the range: not a place for a marker
        assert await stored(backend) == []
        release.set()
        result = await late
        assert [e.position for e in result.events] == [1, 2, 3]
        assert [e.position for e in await reader.read_all(1)] == [2, 3]
    finally:
        release.set()
        await slow.close()
        await reader.close()


async def test_event_payload_field_names_with_dots_and_dollars(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        odd = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"metrics": {"val.acc": 1, "$x": {"y.z": 2}}}, {"a.b": 1})
        await store.append("s", [odd], expected_version=0)
        (e,) = await store.read_stream("s")
        assert e.data == odd.data and e.metadata["a.b"] == 1 and e.hash == expected_hash(e)
    finally:
        await store.close()


async def test_an_append_too_large_to_store_is_refused_before_a_position_is_taken(backend: MongoTestBackend) -> None:
    store = await open_store(backend)
    try:
        huge = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"blob": "x" * (17 * 1024 * 1024)}, {})
        with pytest.raises(UnstorableEvent):
            await store.append("s", [huge], expected_version=0)
        await store.append("s", [ev(1)], expected_version=0)
        assert [e.position for e in await store.read_all(0)] == [1] and await stored(backend) != []
    finally:
        await store.close()


async def test_append_refused_for_good_settles_its_range_and_raises(
    backend: MongoTestBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoding, "MAX_APPEND_BYTES", 2**40)  # let the server be the one to refuse
    store = await open_store(backend)
    reader = await open_store(backend, abandon_after_s=3600)  # would wait an hour on a hole
    try:
        huge = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"blob": "x" * (17 * 1024 * 1024)}, {})
        with pytest.raises(DocumentTooLarge):
            await store.append("s", [huge], expected_version=0)
        await store.append("s", [ev(1)], expected_version=0)
        assert [e.position for e in await reader.read_all(0)] == [2]  # 1 is settled, not a hole
        docs = await stored(backend)
        assert [(d["_id"], d.get("abandoned", False)) for d in docs] == [(1, True), (2, False)]
    finally:
        await store.close()
        await reader.close()
