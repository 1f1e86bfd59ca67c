"""SQLite user store (the embedded default): users and API keys in `data_dir/users.db`."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from domain.roles import parse_roles
from persistence.ports import AlreadyExists, ApiKeyRecord, UserRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS api_keys (
    client_id     TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    name          TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked       INTEGER NOT NULL DEFAULT 0
);
"""


def _roles(text: str) -> Any:
    return parse_roles([r for r in text.split(",") if r])


def _join(roles: frozenset[Any]) -> str:
    return ",".join(sorted(str(r) for r in roles))


class SqliteUserStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> SqliteUserStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.executescript(SCHEMA)
        self._conn = conn
        return self

    def _run(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._conn is None:
            raise RuntimeError("user store is not open")
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        if self._conn is None:
            raise RuntimeError("user store is not open")
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    async def _q(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, params)

    async def _w(self, sql: str, params: tuple[Any, ...]) -> int:
        return await asyncio.to_thread(self._write, sql, params)

    @staticmethod
    def _user(row: tuple[Any, ...]) -> UserRecord:
        return UserRecord(row[0], row[1], _roles(row[2]), row[3], bool(row[4]))

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKeyRecord:
        return ApiKeyRecord(row[0], row[1], row[2], _roles(row[3]), row[4], bool(row[5]))

    async def get_user(self, name: str) -> UserRecord | None:
        rows = await self._q(
            "SELECT name, password_hash, roles, created_at, disabled FROM users WHERE name = ?", (name,)
        )
        return self._user(rows[0]) if rows else None

    async def add_user(self, user: UserRecord) -> None:
        try:
            await self._w(
                "INSERT INTO users (name, password_hash, roles, created_at, disabled) VALUES (?, ?, ?, ?, ?)",
                (user.name, user.password_hash, _join(user.roles), user.created_at, int(user.disabled)),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"user {user.name} exists") from None

    async def list_users(self) -> list[UserRecord]:
        rows = await self._q("SELECT name, password_hash, roles, created_at, disabled FROM users ORDER BY name")
        return [self._user(r) for r in rows]

    async def update_user(self, user: UserRecord) -> bool:
        changed = await self._w(
            "UPDATE users SET password_hash = ?, roles = ?, disabled = ? WHERE name = ?",
            (user.password_hash, _join(user.roles), int(user.disabled), user.name),
        )
        return changed > 0

    async def delete_user(self, name: str) -> bool:
        return await self._w("DELETE FROM users WHERE name = ?", (name,)) > 0

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        try:
            await self._w(
                "INSERT INTO api_keys (client_id, secret_sha256, name, roles, created_at, revoked)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key.client_id, key.secret_sha256, key.name, _join(key.roles), key.created_at, int(key.revoked)),
            )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"API key {key.client_id} exists") from None

    async def get_api_key(self, client_id: str) -> ApiKeyRecord | None:
        rows = await self._q(
            "SELECT client_id, secret_sha256, name, roles, created_at, revoked FROM api_keys WHERE client_id = ?",
            (client_id,),
        )
        return self._key(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        rows = await self._q(
            "SELECT client_id, secret_sha256, name, roles, created_at, revoked FROM api_keys ORDER BY client_id"
        )
        return [self._key(r) for r in rows]

    async def revoke_api_key(self, client_id: str) -> bool:
        return await self._w("UPDATE api_keys SET revoked = 1 WHERE client_id = ? AND revoked = 0", (client_id,)) > 0

    async def close(self) -> None:
        if self._conn is not None:
            with self._lock:
                self._conn.close()
            self._conn = None
