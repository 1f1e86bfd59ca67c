"""Per-principal rate limiting: a token bucket per key (capacity = the per-minute limit)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`check(key)` spends one token and returns 0, or returns the seconds until one is available.
    A limit of 0 disables limiting. The clock is injectable so tests need no sleeping."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> int:
        if self.per_minute <= 0:
            return 0
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_keys:
                    self._prune(now, rate)
                bucket = self._buckets[key] = _Bucket(float(self.per_minute), now)
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0
            return max(1, math.ceil((1.0 - bucket.tokens) / rate))

    def _prune(self, now: float, rate: float) -> None:
        full = [k for k, b in self._buckets.items() if b.tokens + (now - b.updated) * rate >= self.per_minute]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self.max_keys:  # everyone is active: forget the oldest half
            for k in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[: self.max_keys // 2]:
                del self._buckets[k]
