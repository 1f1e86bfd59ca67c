"""SQLite leases (the embedded default, also for several `flp serve` on one data dir): one row
per background service in the read-model database, taken and renewed in IMMEDIATE transactions,
so two processes can never both hold a lease. Time is the wall clock of the caller (one host)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from adapters.sqlite_threads import SqliteThreads
from persistence.ports import Lease

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT    NOT NULL,
    token      INTEGER NOT NULL,
    expires_at REAL    NOT NULL
);
"""


class SqliteLeaseStore:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._pool = SqliteThreads(self.path, "NORMAL", workers=1)

    async def open(self) -> SqliteLeaseStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._pool.run(lambda conn: conn.executescript(SCHEMA))
        return self

    async def close(self) -> None:
        await self._pool.close()

    async def acquire(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        now = self.clock()

        def take(conn: sqlite3.Connection) -> Lease | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT owner, token, expires_at FROM leases WHERE name = ?", (name,)).fetchone()
                if row is None:
                    token = 1
                    conn.execute("INSERT INTO leases VALUES (?, ?, ?, ?)", (name, owner, token, now + ttl_s))
                elif row[0] == owner and row[2] > now:
                    token = row[1]  # ours: renewed
                    conn.execute("UPDATE leases SET expires_at = ? WHERE name = ?", (now + ttl_s, name))
                elif row[2] <= now:
                    token = row[1] + 1  # ran out: taken over, with a higher fencing token
                    conn.execute(
                        "UPDATE leases SET owner = ?, token = ?, expires_at = ? WHERE name = ?",
                        (owner, token, now + ttl_s, name),
                    )
                else:
                    conn.execute("ROLLBACK")
                    return None
                conn.execute("COMMIT")
                return Lease(name, owner, token, now + ttl_s)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._pool.run(take)

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        now = self.clock()

        def extend(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? AND token = ?",
                (now + ttl_s, lease.name, lease.owner, lease.token),
            )
            return cursor.rowcount == 1

        return Lease(lease.name, lease.owner, lease.token, now + ttl_s) if await self._pool.run(extend) else None

    async def release(self, lease: Lease) -> None:
        await self._pool.query(
            "UPDATE leases SET expires_at = 0 WHERE name = ? AND owner = ? AND token = ?",
            (lease.name, lease.owner, lease.token),
        )

    async def holder(self, name: str) -> Lease | None:
        rows = await self._pool.query("SELECT owner, token, expires_at FROM leases WHERE name = ?", (name,))
        if not rows or rows[0][2] <= self.clock():
            return None
        return Lease(name, rows[0][0], int(rows[0][1]), float(rows[0][2]))
