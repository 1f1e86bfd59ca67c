"""Per-principal rate limiting, by the `limits` library: a moving window of `per_minute` requests
per key. The storage is a `limits` storage URI (`FLP_RATE_LIMIT_STORAGE`): `memory://` counts per
process; `redis://…` or `memcached://…` share the counts between replicas."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string


class RateLimiter:
    """`await check(key)` counts one request and returns 0, or the seconds until the next one is
    allowed. A limit of 0 disables limiting."""

    def __init__(
        self, per_minute: int, storage_uri: str = "async+memory://", clock: Callable[[], float] = time.time
    ) -> None:
        self.per_minute = per_minute
        self._clock = clock  # the storage's clock (limits uses time.time): what Retry-After is computed from
        self._item = RateLimitItemPerMinute(max(per_minute, 1))
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        self._limiter = MovingWindowRateLimiter(storage_from_string(uri))

    async def check(self, key: str) -> int:
        if self.per_minute <= 0:
            return 0
        if await self._limiter.hit(self._item, key):
            return 0
        stats = await self._limiter.get_window_stats(self._item, key)
        return max(1, math.ceil(stats.reset_time - self._clock()))
