"""A user store that remembers what the auth guard looks up on every request.

Each authenticated request needs the caller's user (or API key) to check it still exists and is
enabled; reading it from the store each time costs a round trip per request. This wrapper keeps
each record for `ttl_s` seconds. A change made through it (this process: the API, the CLI on
the data dir) takes effect at once; a change made by another process (another replica, a CLI
on another machine) within `ttl_s` (FLP_AUTH_CACHE_SECONDS, default 5 s): that is the longest a
removed user's or revoked key's token keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from persistence.ports import ApiKeyRecord, UserRecord, UserStore

T = TypeVar("T")
MAX_ENTRIES = 10_000


class CachedUserStore:
    def __init__(self, inner: UserStore, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.ttl_s = ttl_s
        self.clock = clock
        self._users: dict[str, tuple[float, UserRecord | None]] = {}
        self._keys: dict[str, tuple[float, ApiKeyRecord | None]] = {}

    def _fresh(self, entry: tuple[float, T | None] | None) -> bool:
        return entry is not None and self.clock() < entry[0]

    def _keep(self, cache: dict[str, tuple[float, T | None]], key: str, value: T | None) -> None:
        if len(cache) >= MAX_ENTRIES:
            cache.clear()  # a burst of distinct callers: start afresh rather than grow
        cache[key] = (self.clock() + self.ttl_s, value)

    # --- reads (cached) -------------------------------------------------------------------------

    async def get_user(self, name: str) -> UserRecord | None:
        entry = self._users.get(name)
        if self.ttl_s > 0 and entry is not None and self._fresh(entry):
            return entry[1]
        user = await self.inner.get_user(name)
        if self.ttl_s > 0:
            self._keep(self._users, name, user)
        return user

    async def get_api_key(self, client_id: str) -> ApiKeyRecord | None:
        entry = self._keys.get(client_id)
        if self.ttl_s > 0 and entry is not None and self._fresh(entry):
            return entry[1]
        key = await self.inner.get_api_key(client_id)
        if self.ttl_s > 0:
            self._keep(self._keys, client_id, key)
        return key

    async def list_users(self) -> list[UserRecord]:
        return await self.inner.list_users()

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return await self.inner.list_api_keys()

    # --- writes (forget what they change) ----------------------------------------------------------

    async def add_user(self, user: UserRecord) -> None:
        self._users.pop(user.name, None)
        await self.inner.add_user(user)

    async def update_user(self, user: UserRecord) -> bool:
        self._users.pop(user.name, None)
        return await self.inner.update_user(user)

    async def delete_user(self, name: str) -> bool:
        self._users.pop(name, None)
        return await self.inner.delete_user(name)

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        self._keys.pop(key.client_id, None)
        await self.inner.add_api_key(key)

    async def revoke_api_key(self, client_id: str) -> bool:
        self._keys.pop(client_id, None)
        return await self.inner.revoke_api_key(client_id)

    async def close(self) -> None:
        await self.inner.close()
