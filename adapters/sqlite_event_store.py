"""SQLite event store: durable (WAL, synchronous=FULL), group-committed, gap-free global feed.

One writer thread owns the write connection. Appends queue up; the writer takes every queued
append into one transaction (one fsync), checks each one's expected version and idempotency key
on its own, assigns positions in commit order, and answers each caller. Because positions are
assigned inside the single write transaction (SQLite allows one writer at a time, across
processes too), a reader never sees position N+1 without N: the feed has no gaps.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adapters.clock import utc_timestamp
from adapters.commit_notices import CommitNotices
from adapters.commit_signal import CommitSignal
from adapters.sqlite_threads import SqliteThreads, connect
from persistence.chain import GENESIS_HASH, ChainedEvent, link
from persistence.encoding import encode
from persistence.ports import AppendResult, ConcurrencyError, IdempotencyKeyReused
from persistence.records import NewEvent, RecordedEvent
from persistence.seals import Sealer

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    data           TEXT    NOT NULL,
    metadata       TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    seal           TEXT,
    UNIQUE (stream_id, version)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key            TEXT PRIMARY KEY,
    stream_id      TEXT    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    version        INTEGER NOT NULL
);
"""

_COLUMNS = "event_id, stream_id, version, position, type, schema_version, data, metadata, prev_hash, hash, seal"
MAX_GROUP = 512  # appends per group commit
MAX_CACHED_STREAMS = 100_000  # stream heads the writer remembers
RECENT_EVENTS = 20_000  # newest committed events kept in memory for the in-process feed


def _idempotent(conn: sqlite3.Connection, key: str) -> AppendResult | None:
    """The earlier append made with this idempotency key, if any."""
    row = conn.execute(
        "SELECT stream_id, first_position, last_position, version FROM idempotency_keys WHERE key = ?", (key,)
    ).fetchone()
    if row is None:
        return None
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM events WHERE position BETWEEN ? AND ? ORDER BY position", (row[1], row[2])
    )
    return AppendResult(row[0], row[3], _decode(rows), duplicate=True)


def _row(chained: ChainedEvent) -> tuple[Any, ...]:
    e = chained.event
    return (
        e.position,
        e.stream_id,
        e.version,
        e.event_id,
        e.type,
        e.schema_version,
        chained.data_json,
        chained.metadata_json,
        e.prev_hash,
        e.hash,
        e.seal,
    )


def _decode(rows: Any) -> list[RecordedEvent]:
    """Rows to envelopes. Events of one command share their metadata text: parse it once."""
    loads = orjson.loads
    metas: dict[str, Any] = {}
    out = []
    for a, b, c, d, e, f, g, h, i, j, k in rows:
        meta = metas.get(h)
        if meta is None:
            meta = metas[h] = loads(h)
        out.append(RecordedEvent(a, b, c, d, e, f, loads(g), meta, i, j, k))
    return out


@dataclass(slots=True)
class _Append:
    stream_id: str
    events: Sequence[NewEvent]
    expected_version: int | None
    idempotency_key: str | None
    future: asyncio.Future[AppendResult]


class SqliteEventStore:
    """`sealer` (the audit seal key's HMAC) seals each event in the transaction that writes it:
    an acknowledged event is never without its seal."""

    def __init__(
        self, path: Path, synchronous: str = "FULL", sealer: Sealer | None = None, feed_fallback_s: float = 1.0
    ) -> None:
        self.path = Path(path)
        self._feed_fallback_s = feed_fallback_s  # the feed's re-read when no commit notice comes
        self._synchronous = synchronous
        self._sealer = sealer
        self._queue: queue.SimpleQueue[_Append | None] = queue.SimpleQueue()
        self.transactions = 0  # group commits made: fewer than appends under concurrency
        self.appends = 0
        self._writer: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signal: CommitSignal | None = None
        self._notices: CommitNotices | None = None  # to and from other processes on this file
        self._lock_fd: int | None = None
        self._reads: SqliteThreads | None = None
        # writer-thread state: valid while no other connection committed (PRAGMA data_version)
        self._data_version: int | None = None
        self._head = 0
        self._heads: dict[str, tuple[int, str]] = {}  # stream -> (version, hash), insertion-ordered
        # event-loop state: the newest committed events, contiguous positions (shared, read-only)
        self._recent: list[RecordedEvent] = []

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> SqliteEventStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        self._signal = CommitSignal(self._feed_fallback_s)
        self._reads = SqliteThreads(self.path, self._synchronous, query_only=True)
        conn = connect(self.path, self._synchronous)
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
        if "seal" not in columns:  # a data dir from before seals were kept with their events
            conn.execute("ALTER TABLE events ADD COLUMN seal TEXT")
        head = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
        self._signal.notify(head)
        # Writers in other processes on this file (replicas, `flp serve --workers`) queue on this
        # lock around their transactions: the kernel hands it over at once, where SQLite's busy
        # handler sleeps 1, 2, 5... ms and retries (the p99 of two workers: 100-534 ms, 42-50 with it)
        self._lock_fd = os.open(f"{self.path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._notices = CommitNotices(self.path)
        self._notices.listen(self._loop, self._signal.notify)
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="flp-sqlite-writer", daemon=True)
        self._writer.start()
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._notices is not None:
            self._notices.close()
            self._notices = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if self._reads is not None:
            await self._reads.close()
            self._reads = None

    # --- writes ------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        if self._writer is None or self._loop is None:
            raise RuntimeError("event store is not open")
        future: asyncio.Future[AppendResult] = self._loop.create_future()
        self._queue.put(_Append(stream_id, events, expected_version, idempotency_key, future))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                conn.close()
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit_group(conn, group)
            if stop:
                conn.close()
                return

    def _commit_group(self, conn: sqlite3.Connection, group: list[_Append]) -> None:
        """One transaction for the group. Each append runs inside its own savepoint: whatever
        fails in one (a version conflict, an unstorable value, a constraint, anything unexpected)
        is rolled back and answered to that caller alone; the others commit. (A group of one
        needs no savepoint: its transaction is its savepoint.)

        The writer remembers the head position and each stream's last version and hash between
        groups; `PRAGMA data_version` (which changes only when another connection - another
        process - committed) tells it when to read them afresh."""
        outcomes: list[AppendResult | BaseException] = []
        staged: dict[str, tuple[int, str]] = {}
        alone = len(group) == 1
        lock = self._lock_fd
        if lock is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            conn.execute("BEGIN IMMEDIATE")
            data_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if data_version != self._data_version:
                self._heads.clear()
                self._head = conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
            head = self._head
            for req in group:
                if not alone:
                    conn.execute("SAVEPOINT one_append")
                try:
                    result, head = self._append_one(conn, req, head, staged, len(group))
                except Exception as exc:
                    if alone:
                        raise
                    conn.execute("ROLLBACK TO one_append")
                    if not isinstance(exc, ConcurrencyError | IdempotencyKeyReused | ValueError):
                        log.exception("append to %s failed; the rest of its group commits", req.stream_id)
                    outcomes.append(exc)
                else:
                    outcomes.append(result)
                if not alone:
                    conn.execute("RELEASE one_append")
            conn.execute("COMMIT")
            if self._notices is not None and head != self._head:
                self._notices.send(head)  # the other processes' feeds wake now, not at their fallback
            self._data_version = data_version
            self._head = head
            self._remember_heads(staged)
            self.transactions += 1
            self.appends += len(group)
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._data_version = None  # read the heads afresh next time
            if alone and isinstance(exc, Exception):
                if not isinstance(exc, ConcurrencyError | IdempotencyKeyReused | ValueError):
                    log.exception("append to %s failed", group[0].stream_id)
                outcomes, head = [exc], self._head  # the one append failed on its own
            else:  # disk full, I/O error: nothing of the group is written
                outcomes, head = [exc] * len(group), None
        finally:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._deliver, group, outcomes, head)

    def _remember_heads(self, staged: dict[str, tuple[int, str]]) -> None:
        self._heads.update(staged)
        while len(self._heads) > MAX_CACHED_STREAMS:
            self._heads.pop(next(iter(self._heads)))

    def _deliver(self, group: list[_Append], outcomes: list[AppendResult | BaseException], head: int | None) -> None:
        self._keep_recent(outcomes)
        if head is not None and self._signal is not None:
            self._signal.notify(head)
        for req, outcome in zip(group, outcomes, strict=True):
            if req.future.done():
                continue
            if isinstance(outcome, BaseException):
                req.future.set_exception(outcome)
            else:
                req.future.set_result(outcome)

    def _keep_recent(self, outcomes: list[AppendResult | BaseException]) -> None:
        """The group's committed events join the in-memory tail of the feed (contiguous
        positions only: a commit by another process in between starts the tail afresh)."""
        new = [e for o in outcomes if isinstance(o, AppendResult) and not o.duplicate for e in o.events]
        if not new:
            return
        recent = self._recent
        if recent and new[0].position != recent[-1].position + 1:
            recent.clear()
        recent.extend(new)
        if len(recent) > 2 * RECENT_EVENTS:
            del recent[: len(recent) - RECENT_EVENTS]

    def _stream_head(
        self, conn: sqlite3.Connection, stream_id: str, staged: dict[str, tuple[int, str]]
    ) -> tuple[int, str]:
        known = staged.get(stream_id) or self._heads.get(stream_id)
        if known is not None:
            return known
        last = conn.execute(
            "SELECT version, hash FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1", (stream_id,)
        ).fetchone()
        return (last[0], last[1]) if last else (0, GENESIS_HASH)

    def _append_one(
        self, conn: sqlite3.Connection, req: _Append, head: int, staged: dict[str, tuple[int, str]], group: int
    ) -> tuple[AppendResult, int]:
        if req.idempotency_key is not None:
            earlier = _idempotent(conn, req.idempotency_key)
            if earlier is not None:
                if earlier.stream_id != req.stream_id:
                    raise IdempotencyKeyReused(f"idempotency key was used for stream {earlier.stream_id}")
                return earlier, head
        version, prev_hash = self._stream_head(conn, req.stream_id, staged)
        if req.expected_version is not None and req.expected_version != version:
            raise ConcurrencyError(req.stream_id, req.expected_version, version)
        chained = link(req.stream_id, encode(req.events), version, head + 1, prev_hash, utc_timestamp(), self._sealer)
        rows_out = [_row(c) for c in chained]
        recorded = [c.event for c in chained]
        head += len(recorded)
        version += len(recorded)
        conn.executemany(
            "INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata,"
            " prev_hash, hash, seal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows_out,
        )
        if req.idempotency_key is not None and recorded:
            conn.execute(
                "INSERT INTO idempotency_keys (key, stream_id, first_position, last_position, version)"
                " VALUES (?, ?, ?, ?, ?)",
                (req.idempotency_key, req.stream_id, recorded[0].position, recorded[-1].position, version),
            )
        if recorded:
            staged[req.stream_id] = (version, recorded[-1].hash)  # remembered once the group commits
        return AppendResult(req.stream_id, version, recorded, group_size=group), head

    # --- reads -------------------------------------------------------------------------------

    @property
    def _pool(self) -> SqliteThreads:
        if self._reads is None:
            raise RuntimeError("event store is not open")
        return self._reads

    async def find_idempotent(self, idempotency_key: str) -> AppendResult | None:
        return self._pool.now(lambda conn: _idempotent(conn, idempotency_key))  # a key lookup: inline

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        upper = to_version if to_version is not None else 2**62
        sql = f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND version BETWEEN ? AND ? ORDER BY version"
        return await self._pool.run(lambda conn: _decode(conn.execute(sql, (stream_id, from_version, upper))))

    async def stream_version(self, stream_id: str) -> int:
        rows = self._pool.now_query("SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?", (stream_id,))
        return int(rows[0][0])

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """From the in-memory tail when it holds position after+1 (the feed's consumers in this
        process - projections, the seal copy, the relay, the supervisor - read what was just
        committed without a query or a decode each), else from the database."""
        recent = self._recent
        if recent and recent[0].position <= after_position + 1 <= recent[-1].position:
            start = after_position + 1 - recent[0].position
            return recent[start : start + limit]
        sql = f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
        return await self._pool.run(lambda conn: _decode(conn.execute(sql, (after_position, limit))))

    async def head_position(self) -> int:
        rows = self._pool.now_query("SELECT coalesce(max(position), 0) FROM events")
        return int(rows[0][0])

    async def subscribe(self, after_position: int = 0, batch_size: int = 1000) -> AsyncIterator[list[RecordedEvent]]:
        assert self._signal is not None, "event store is not open"
        signal = self._signal
        position = after_position
        while True:
            batch = await self.read_all(position, batch_size)
            if batch:
                position = batch[-1].position
                yield batch
                if len(batch) < batch_size and position >= signal.head:
                    # the read reached the end and nothing was committed since, as far as this
                    # process knows: wait before reading again (the read would find nothing, but
                    # a query it is, on a pool thread: two thread hops per batch and consumer)
                    await signal.wait_beyond(position)
            else:
                await signal.wait_beyond(position)
