"""SQLite work for asyncio code: bulk reads and writes on a private thread pool (one connection
per thread), and point reads right on the event loop's thread (`now`).

A point read (a primary-key lookup, a max over an index) of a WAL database takes microseconds
and never waits for a lock; a thread hop costs tens to hundreds of microseconds under load, so
such reads are cheaper inline. Anything that may touch many rows or wait (scans, writes) goes to
the pool. Closing waits for queries still running (even for callers that were cancelled) before
the connections are closed, so a connection is never closed under a running query.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SqliteThreads:
    def __init__(self, path: Path, synchronous: str, *, workers: int = 4, query_only: bool = False) -> None:
        self._path = path
        self._synchronous = synchronous
        self._query_only = query_only
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flp-sqlite")
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._inline: sqlite3.Connection | None = None  # the event loop thread's own connection

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (call only from a pool thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self._path, self._synchronous)
            if self._query_only:
                conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self.connection()))

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self.run(lambda conn: conn.execute(sql, params).fetchall())

    def now(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a point read on the calling (event loop) thread, with its own connection."""
        if self._inline is None:
            self._inline = connect(self._path, self._synchronous)
            self._inline.execute("PRAGMA query_only=ON")
        return fn(self._inline)

    def now_query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.now(lambda conn: conn.execute(sql, params).fetchall())

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
