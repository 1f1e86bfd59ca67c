"""SQLite-specific promises beyond the contract: durability settings and group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

from adapters.sqlite_event_store import SqliteEventStore
from persistence.ports import ConcurrencyError
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
