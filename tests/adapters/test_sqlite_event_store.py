"""SQLite-specific promises beyond the contract: durability settings and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from adapters.sqlite_event_store import SqliteEventStore
from persistence.ports import AppendResult, ConcurrencyError, IdempotencyKeyReused
from persistence.records import NewEvent


def ev() -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": "c"}, {"actor": "t"})


async def test_durable_by_default(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        await store.append("s", [ev()], 0)
        conn = sqlite3.connect(tmp_path / "e.db")
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
        pragma = await store._pool.query("PRAGMA synchronous")  # noqa: SLF001
        assert pragma[0][0] == 2  # FULL
    finally:
        await store.close()


async def test_concurrent_appends_share_transactions_but_keep_their_own_checks(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        for i in range(64):
            await store.append(f"s{i}", [ev()], 0)
        before = store.transactions
        # Another connection holds the write lock, so the writer cannot commit while the appends
        # arrive: they wait together in its queue, whatever the thread scheduling.
        blocker = sqlite3.connect(tmp_path / "e.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        # 64 appends that should succeed and 64 that must fail their own version check
        good = [asyncio.create_task(store.append(f"s{i}", [ev(), ev()], 1)) for i in range(64)]
        bad = [asyncio.create_task(store.append(f"s{i}", [ev()], 0)) for i in range(64)]
        await asyncio.sleep(0)  # every task has queued its append
        blocker.execute("ROLLBACK")
        blocker.close()
        results = await asyncio.gather(*good, *bad, return_exceptions=True)
        assert all(not isinstance(r, BaseException) for r in results[:64])
        assert all(isinstance(r, ConcurrencyError) for r in results[64:])
        # the writer took at most the first append alone before it found the lock taken
        assert store.transactions - before <= 2, "appends waiting together must share commits"
        assert await store.head_position() == 64 + 128
    finally:
        await store.close()


async def test_events_survive_reopen(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    await store.append("s", [ev(), ev()], 0, idempotency_key="k")
    await store.close()
    again = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        assert [e.version for e in await again.read_stream("s")] == [1, 2]
        dup = await again.append("s", [ev()], 0, idempotency_key="k")
        assert dup.duplicate and dup.version == 2
        assert (await again.append("s", [ev()], 2)).events[0].position == 3
    finally:
        await again.close()


async def test_the_in_memory_feed_tail_never_hides_another_process_commits(tmp_path: Path) -> None:
    """Reads served from the newest committed events in memory stay exactly what the database
    holds, also when another process commits in between."""
    a = await SqliteEventStore(tmp_path / "e.db").open()
    b = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        await a.append("s1", [ev(), ev()], 0)  # positions 1, 2 (in a's tail)
        await b.append("s2", [ev()], 0)  # position 3, by "another process"
        await a.append("s1", [ev()], 2)  # position 4: a's tail starts afresh here
        for store in (a, b):
            feed = await store.read_all(0, 100)
            assert [e.position for e in feed] == [1, 2, 3, 4]
            assert [e.position for e in await store.read_all(1, 2)] == [2, 3]
            assert [e.position for e in await store.read_all(3, 100)] == [4]
            assert await store.read_all(4, 100) == []
        stored = {e.event_id for e in await b.read_all(0, 100)}
        assert {e.event_id for e in await a.read_all(0, 100)} == stored
    finally:
        await a.close()
        await b.close()


async def test_a_caught_up_feed_waits_without_querying_and_still_sees_other_processes(tmp_path: Path) -> None:
    """After a batch that reached the end, the feed waits for the next commit instead of asking
    the database for nothing (two thread hops per batch and consumer); commits of this process
    and of another one on the file still arrive."""
    a = await SqliteEventStore(tmp_path / "e.db").open()
    b = await SqliteEventStore(tmp_path / "e.db", feed_fallback_s=3600).open()
    queries = 0
    run = b._pool.run  # noqa: SLF001

    async def counted(fn: Any) -> Any:
        nonlocal queries
        queries += 1
        return await run(fn)

    b._pool.run = counted  # type: ignore[method-assign]  # noqa: SLF001
    try:
        await b.append("s1", [ev()], 0)  # position 1, in b's in-memory tail
        feed = b.subscribe(0, batch_size=10)
        assert [e.position for e in await anext(feed)] == [1]
        nxt = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.2)
        assert not nxt.done()
        assert queries == 0, "a caught-up feed asked the database for nothing"
        await b.append("s1", [ev()], 1)  # this process: from the tail
        assert [e.position for e in await asyncio.wait_for(nxt, 5)] == [2]
        await a.append("s2", [ev()], 0)  # another process: its commit notice wakes the feed
        assert [e.position for e in await asyncio.wait_for(anext(feed), 5)] == [3]
    finally:
        await a.close()
        await b.close()


async def held_together(store: SqliteEventStore, path: Path, appends: list[Any]) -> list[Any]:
    """Run `appends` (coroutines) so that they reach the writer together, as one group: another
    connection holds the write lock until every one of them is queued."""
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    tasks = [asyncio.ensure_future(a) for a in appends]
    await asyncio.sleep(0)
    blocker.execute("ROLLBACK")
    blocker.close()
    return await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_constraint_only_the_database_finds_fails_one_append_of_its_group(tmp_path: Path) -> None:
    """An event id already stored, inside a group commit: only the culprit fails; positions stay
    gap-free and the stream heads the writer remembers stay true."""
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        taken = ev()
        await store.append("first", [taken], 0)
        await store.append("known", [ev()], 0)  # a head the writer remembers
        before = store.transactions
        dup = NewEvent(taken.event_id, "ClientJoined", 1, {"job_id": "j", "client_id": "d"}, {"actor": "t"})
        results = await held_together(
            store,
            tmp_path / "e.db",
            [
                store.append("ok-1", [ev()], 0),
                store.append("known", [ev()], 1),
                store.append("dup", [ev(), dup], 0),
                store.append("known", [ev()], 2),
                store.append("ok-2", [ev(), ev()], 0),
            ],
        )
        assert isinstance(results[2], sqlite3.IntegrityError), results
        assert not any(isinstance(r, BaseException) for i, r in enumerate(results) if i != 2), results
        assert store.transactions - before <= 2, "the appends were not written as one group"
        assert await store.stream_version("dup") == 0
        assert [await store.stream_version(s) for s in ("ok-1", "known", "ok-2")] == [1, 3, 2]
        feed = await store.read_all(0, 100)
        assert [e.position for e in feed] == list(range(1, 8))
        assert (await store.append("known", [ev()], 3)).version == 4  # its remembered head is right
        assert (await store.append("dup", [ev()], 0)).version == 1
    finally:
        await store.close()


async def test_an_idempotency_key_used_twice_in_one_group_answers_the_second_with_the_first(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        before = store.transactions
        results = await held_together(
            store,
            tmp_path / "e.db",
            [
                store.append("a", [ev()], 0, idempotency_key="k"),
                store.append("b", [ev()], 0),
                store.append("a", [ev()], 0, idempotency_key="k"),
                store.append("c", [ev()], 0, idempotency_key="k"),
            ],
        )
        first, other, again, elsewhere = results
        assert isinstance(first, AppendResult) and not first.duplicate
        assert isinstance(other, AppendResult) and other.version == 1
        assert isinstance(again, AppendResult) and again.duplicate
        assert [e.event_id for e in again.events] == [e.event_id for e in first.events]
        assert isinstance(elsewhere, IdempotencyKeyReused)
        assert store.transactions - before <= 2, "the appends were not written as one group"
        assert await store.stream_version("a") == 1 and await store.stream_version("c") == 0
    finally:
        await store.close()
