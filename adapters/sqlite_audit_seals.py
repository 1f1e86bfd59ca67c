"""SQLite seal store: one keyed seal per event in `data_dir/audit-seals.db`, group-committed.

It lives apart from the event store so that editing the events database alone cannot also
rewrite the seals (and the key that makes them lives in neither)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from persistence.seals import SealRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS seals (
    position  INTEGER PRIMARY KEY,
    stream_id TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    event_id  TEXT    NOT NULL,
    seal      TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS seals_by_stream ON seals (stream_id, version);
"""
_COLUMNS = "position, stream_id, version, event_id, seal"


class SqliteSealStore:
    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[list[SealRecord], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def open(self) -> SqliteSealStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(SCHEMA)
        self._conn = conn
        return self

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("seal store is not open")
        return self._conn

    # --- writes: concurrent callers share one transaction ----------------------------------

    async def put(self, seals: list[SealRecord]) -> None:
        if not seals:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((seals, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [(s.position, s.stream_id, s.version, s.event_id, s.seal) for seals, _ in batch for s in seals]
            try:
                await asyncio.to_thread(self._write, rows)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _write(self, rows: list[tuple[Any, ...]]) -> None:
        conn = self._db()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # OR IGNORE: re-sealing the same event is a no-op; an existing seal is never replaced
                conn.executemany(f"INSERT OR IGNORE INTO seals ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- reads -------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db().execute(sql, params).fetchall()

    async def range(self, after_position: int, up_to: int | None = None) -> list[SealRecord]:
        rows = await asyncio.to_thread(
            self._query,
            f"SELECT {_COLUMNS} FROM seals WHERE position > ? AND position <= ? ORDER BY position",
            (after_position, up_to if up_to is not None else 2**62),
        )
        return [SealRecord(*r) for r in rows]

    async def for_stream(self, stream_id: str) -> list[SealRecord]:
        rows = await asyncio.to_thread(
            self._query, f"SELECT {_COLUMNS} FROM seals WHERE stream_id = ? ORDER BY version", (stream_id,)
        )
        return [SealRecord(*r) for r in rows]

    async def head(self) -> int:
        rows = await asyncio.to_thread(self._query, "SELECT coalesce(max(position), 0) FROM seals", ())
        return int(rows[0][0])

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._conn is not None:
            with self._lock:
                self._conn.close()
            self._conn = None
