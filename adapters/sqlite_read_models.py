"""SQLite read-model store: JSON documents per (projection, key) plus checkpoints, one file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from adapters.commit_notices import CommitNotices
from adapters.sqlite_threads import SqliteThreads
from persistence.ports import FencedOut
from projections.ports import Commit, Doc, DocChange, Where, check_where, encode_doc

SCHEMA = """
CREATE TABLE IF NOT EXISTS read_models (
    projection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    doc        TEXT    NOT NULL,
    PRIMARY KEY (projection, key)
);
CREATE INDEX IF NOT EXISTS read_models_by_position ON read_models (projection, position);
CREATE INDEX IF NOT EXISTS read_models_by_status ON read_models (projection, json_extract(doc, '$.status'));
CREATE TABLE IF NOT EXISTS checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    fence    INTEGER NOT NULL DEFAULT 0
);
"""


def _where(projection: str, where: Where | None) -> tuple[str, tuple[Any, ...]]:
    """SQL condition and parameters: the projection, and each field equal to its value (field
    names are checked identifiers; values are always bound parameters)."""
    clauses: list[str] = ["projection = ?"]
    params: list[Any] = [projection]
    for name, value in check_where(where).items():
        if value is None:
            clauses.append(f"json_extract(doc, '$.{name}') IS NULL")
        else:
            clauses.append(f"json_extract(doc, '$.{name}') = ?")
            params.append(int(value) if isinstance(value, bool) else value)  # JSON true reads back as 1
    return " AND ".join(clauses), tuple(params)


def _fenced(conn: sqlite3.Connection, name: str, fence: int | None) -> None:
    if fence is None:
        return
    row = conn.execute("SELECT fence FROM checkpoints WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] > fence:
        raise FencedOut(f"checkpoint {name} was written under lease token {row[0]}; this writer holds {fence}")


INLINE_ROWS = 200  # reads of at most this many rows by key run inline on the event loop


class _Answers:
    """Answers to repeated reads (pages, counts), each kept while the file is as it was when it
    was read. `PRAGMA data_version`, asked on the inline read-only connection, changes with every
    commit of any other connection (the projection runner's threads, another process), so while
    it stands an answer still holds. The version is read before the query: a commit landing in
    between makes the next call read again. Bounded by what it holds: full, it starts over."""

    def __init__(self, max_bytes: int = 16 << 20) -> None:
        self._known: dict[tuple[Any, ...], tuple[int, Any]] = {}
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, key: tuple[Any, ...], version: int) -> Any | None:
        known = self._known.get(key)
        return known[1] if known is not None and known[0] == version else None

    def keep(self, key: tuple[Any, ...], version: int, answer: Any, size: int) -> None:
        if self._bytes + size > self._max_bytes or len(self._known) >= 4096:
            self._known.clear()
            self._bytes = 0
        self._known[key] = (version, answer)
        self._bytes += size  # an answer replaced under its key still counts: the next start-over clears it


class SqliteReadModelStore:
    """Read models are disposable (rebuilt from the event store), so by default they commit with
    synchronous=NORMAL: a power cut may lose the last few batches, never tear one, and since each
    checkpoint commits with its writes the runner simply re-applies them."""

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        self._synchronous = synchronous
        self._pool = SqliteThreads(self.path, synchronous)
        self._answers = _Answers()
        self._notices = CommitNotices(self.path)  # to and from the other processes on this file
        self._elsewhere = asyncio.Event()  # set when one of them committed

    async def open(self) -> SqliteReadModelStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)

        def create(conn: sqlite3.Connection) -> None:
            conn.executescript(SCHEMA)
            if "fence" not in {row[1] for row in conn.execute("PRAGMA table_info(checkpoints)")}:
                conn.execute("ALTER TABLE checkpoints ADD COLUMN fence INTEGER NOT NULL DEFAULT 0")

        await self._pool.run(create)
        self._notices.listen(asyncio.get_running_loop(), lambda _: self._elsewhere.set())
        return self

    async def close(self) -> None:
        self._notices.close()
        await self._pool.close()

    async def wait_commit_elsewhere(self, timeout: float) -> None:
        elsewhere = self._elsewhere
        if not elsewhere.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):  # (wait_for would make a task per wait)
                    await elsewhere.wait()
        elsewhere.clear()  # before the caller reads: a commit from now on sets it again

    async def _rows(self, sql: str, params: tuple[Any, ...], *, inline: bool = False) -> list[tuple[Any, ...]]:
        """Point reads of a few rows run inline (see adapters/sqlite_threads.py); the rest in a thread."""
        return self._pool.now_query(sql, params) if inline else await self._pool.query(sql, params)

    async def get(self, projection: str, key: str) -> Doc | None:
        doc = self._stored(projection, key)
        return None if doc is None else orjson.loads(doc)

    async def get_json(self, projection: str, key: str) -> bytes | None:
        doc = self._stored(projection, key)
        return None if doc is None else doc.encode()  # as orjson wrote it (sorted keys)

    def _stored(self, projection: str, key: str) -> str | None:
        """One document's stored JSON (a point read, inline: see adapters/sqlite_threads.py)."""
        rows = self._pool.now_query("SELECT doc FROM read_models WHERE projection = ? AND key = ?", (projection, key))
        return str(rows[0][0]) if rows else None

    async def get_many(self, projection: str, keys: list[str]) -> dict[str, Doc]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = await self._rows(
            f"SELECT key, doc FROM read_models WHERE projection = ? AND key IN ({marks})",
            (projection, *keys),
            inline=len(keys) <= INLINE_ROWS,
        )
        return {k: orjson.loads(d) for k, d in rows}

    async def list_docs(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[Doc]:
        return [orjson.loads(doc) for doc in await self._page(projection, limit, offset, where)]

    async def list_json(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[bytes]:
        return list(await self._page(projection, limit, offset, where))

    def _version(self) -> int:
        return int(self._pool.now_query("PRAGMA data_version")[0][0])

    async def _page(self, projection: str, limit: int, offset: int, where: Where | None) -> list[bytes]:
        """The stored JSON of a page of documents, in key order (kept while the file stands:
        a dashboard's page is read once per change, not once per request)."""
        condition, params = _where(projection, where)
        key, version = ("page", condition, params, limit, offset), self._version()
        page: list[bytes] | None = self._answers.get(key, version)
        if page is None:
            rows = await self._rows(
                f"SELECT doc FROM read_models WHERE {condition} ORDER BY key LIMIT ? OFFSET ?",
                (*params, limit, offset),
                inline=limit + offset <= INLINE_ROWS and not where,
            )
            page = [str(r[0]).encode() for r in rows]  # as orjson wrote it (sorted keys)
            self._answers.keep(key, version, page, sum(map(len, page)) + 64)
        return page

    async def count(self, projection: str, where: Where | None = None) -> int:
        """Counted once per state of the file (see `_Answers`): a count walks every document of
        the projection."""
        condition, params = _where(projection, where)
        key, version = ("count", condition, params), self._version()
        known: int | None = self._answers.get(key, version)
        if known is None:
            rows = await self._rows(f"SELECT count(*) FROM read_models WHERE {condition}", params)
            known = int(rows[0][0])
            self._answers.keep(key, version, known, 64)
        return known

    async def changed_after(self, projection: str, position: int, key: str | None = None) -> list[DocChange]:
        sql = "SELECT key, position, doc FROM read_models WHERE projection = ? AND position > ?"
        params: tuple[Any, ...] = (projection, position)
        if key is not None:
            sql += " AND key = ?"
            params += (key,)
        rows = await self._rows(sql + " ORDER BY position", params)
        return [DocChange(projection, k, p, orjson.loads(d), encoded=d.encode()) for k, p, d in rows]

    async def get_checkpoint(self, name: str) -> int:
        rows = await self._rows("SELECT position FROM checkpoints WHERE name = ?", (name,), inline=True)
        return int(rows[0][0]) if rows else 0

    async def set_checkpoint(self, name: str, position: int, fence: int | None = None) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _fenced(conn, name, fence)
                conn.execute(
                    "INSERT INTO checkpoints (name, position, fence) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                    " fence = max(fence, excluded.fence)",
                    (name, position, fence or 0),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._pool.run(write)
        self._notices.send(position)

    async def commit(
        self,
        projection: str,
        changes: Mapping[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
    ) -> bool:
        done = await self._pool.run(
            lambda conn: self._commit_sync(conn, projection, dict(changes), from_checkpoint, to_checkpoint, fence)
        )
        if done:
            self._notices.send(to_checkpoint)
        return done

    async def commit_many(self, commits: Sequence[Commit]) -> list[bool]:
        done = await self._pool.run(lambda conn: self._commit_many_sync(conn, list(commits)))
        if any(done):
            self._notices.send(max(c.to_checkpoint for c in commits))
        return done

    def _commit_many_sync(self, conn: sqlite3.Connection, commits: list[Commit]) -> list[bool]:
        """One transaction for every projection's batch (one fsync, one thread hop)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = [
                self._write(conn, c.projection, dict(c.changes), c.from_checkpoint, c.to_checkpoint, c.fence, c.encoded)
                for c in commits
            ]
            conn.execute("COMMIT")
            return done
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _commit_sync(
        self,
        conn: sqlite3.Connection,
        projection: str,
        changes: dict[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
    ) -> bool:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = self._write(conn, projection, changes, from_checkpoint, to_checkpoint, fence)
            conn.execute("COMMIT" if done else "ROLLBACK")
            return done
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _write(
        conn: sqlite3.Connection,
        projection: str,
        changes: dict[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
        encoded: Mapping[str, bytes] | None = None,
    ) -> bool:
        """Inside a transaction: the writes and the checkpoint move, if the checkpoint is still
        `from_checkpoint` (else nothing, False) and no higher lease token wrote it (FencedOut).
        `encoded` holds documents already encoded by `encode_doc` (the runner's, not encoded twice)."""
        _fenced(conn, projection, fence)
        row = conn.execute("SELECT position FROM checkpoints WHERE name = ?", (projection,)).fetchone()
        if (row[0] if row else 0) != from_checkpoint:
            return False
        known = encoded or {}
        upserts = [
            (projection, key, pos, (known.get(key) or encode_doc(doc)).decode())
            for key, (pos, doc) in changes.items()
            if doc is not None
        ]
        deletes = [(projection, key) for key, (_, doc) in changes.items() if doc is None]
        conn.executemany(
            "INSERT INTO read_models (projection, key, position, doc) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (projection, key) DO UPDATE SET position = excluded.position, doc = excluded.doc",
            upserts,
        )
        conn.executemany("DELETE FROM read_models WHERE projection = ? AND key = ?", deletes)
        conn.execute(
            "INSERT INTO checkpoints (name, position, fence) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position, fence = max(fence, excluded.fence)",
            (projection, to_checkpoint, fence or 0),
        )
        return True

    async def drop(self, projection: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM read_models WHERE projection = ?", (projection,))
            conn.execute("DELETE FROM checkpoints WHERE name = ?", (projection,))
            conn.execute("COMMIT")

        await self._pool.run(run)

    async def dump(self, projection: str) -> dict[str, Doc]:
        rows = await self._rows("SELECT key, doc FROM read_models WHERE projection = ? ORDER BY key", (projection,))
        return {k: orjson.loads(d) for k, d in rows}
