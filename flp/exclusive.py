"""Services that must run once across replicas (the projection runner, the Kafka relay, the
Flower runtime, the seal copy) run on the replica holding their lease, each lease on its own.

The holder renews every third of the TTL; a replica that stops renewing (killed, paused,
partitioned) loses the service once the TTL runs out, and a waiting replica takes it over with
a higher fencing token. The service's writes carry the token (`Ownership`), so a paused owner
that wakes up is refused by the store (FencedOut) instead of writing over its successor; and
an action that cannot be fenced (submitting a Flower run) is taken only with time left on the
lease. While it waits, a replica may run a standby (the projections' follower, so that its live
subscribers and read-your-writes waiters still hear about every commit).

Written here rather than taken from a library: the coordination libraries (tooz, pottery...)
want a coordination server (ZooKeeper, etcd, Redis) that the platform does not otherwise need;
this is the lease over the stores it already has (SQLite, MongoDB), about 100 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from persistence.ports import FencedOut, Lease, LeaseStore, Ownership
from telemetry import metrics

log = logging.getLogger(__name__)
RESTART_FIRST_S = 0.5
RESTART_MAX_S = 30.0


def replica_id() -> str:
    """A name no other replica (or later process on this host) has: host, pid, random."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ExclusiveService:
    def __init__(
        self,
        name: str,
        leases: LeaseStore,
        owner: str,
        ttl_s: float,
        run: Callable[[], Coroutine[Any, Any, None]],
        ownership: Ownership,
        *,
        standby: Callable[[], Coroutine[Any, Any, None]] | None = None,
        on_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.name = name
        self.leases = leases
        self.owner = owner
        self.ttl_s = ttl_s
        self._run = run
        self.ownership = ownership  # shared with the service: its writes read the token from it
        self.ownership.valid_until = -math.inf  # not held until acquired
        self._standby = standby
        self._on_lost = on_lost  # after the service was cancelled because the lease was lost
        self.holder: str | None = None  # who runs the service, as last seen
        self.takeovers = 0  # times this replica took the service

    @property
    def every_s(self) -> float:
        return self.ttl_s / 3

    @property
    def owned(self) -> bool:
        return self.ownership.held()

    async def run(self) -> None:
        """Wait for the lease (running the standby meanwhile), run the service while it is held,
        and wait again when it is lost. A crash of the service gives the lease up and is raised
        (the container restarts the whole thing after a back-off)."""
        while True:
            lease = await self._acquire()
            if not await self._own(lease):
                return

    async def _acquire(self) -> Lease:
        standby = asyncio.create_task(self._standby(), name=f"{self.name}-standby") if self._standby else None
        try:
            while True:
                asked_at = time.monotonic()
                lease = await self.leases.acquire(self.name, self.owner, self.ttl_s)
                if lease is not None:
                    self._held(lease, asked_at)
                    return lease
                current = await self.leases.holder(self.name)
                self.holder = current.owner if current else None
                if standby is not None and standby.done():
                    standby.result()  # a standby that crashed: raise it
                await asyncio.sleep(self.every_s)
        finally:
            if standby is not None:
                standby.cancel()
                await asyncio.gather(standby, return_exceptions=True)

    def _held(self, lease: Lease, asked_at: float) -> None:
        """Held until the TTL, counted from before the request (less a fifth for clock skew
        between replicas, which judge expiry by their own clocks)."""
        self.ownership.token = lease.token
        self.ownership.valid_until = asked_at + self.ttl_s * 0.8

    async def _own(self, lease: Lease) -> bool:
        """Run the service under `lease`, restarting it after a crash (backing off from 0.5 s to
        30 s) without giving the lease up: a replica whose service crashes keeps what it runs
        (Flower's processes...). True when the lease was lost (wait again), False when the
        service returned (a clean stop)."""
        self.holder, self.takeovers = self.owner, self.takeovers + 1
        log.info("%s: this replica (%s) runs it now, lease token %s", self.name, self.owner, lease.token)
        metrics.SERVICE_OWNED.labels(self.name).set(1)
        lost, crashes = False, 0
        work = asyncio.create_task(self._run(), name=self.name)
        try:
            while True:
                if not await self._while_held(lease, work):
                    lost = True
                    log.warning("%s: lease lost; stopping it on this replica", self.name)
                    return True
                error = work.exception()
                if error is None:
                    return False
                if isinstance(error, FencedOut):
                    lost = True
                    log.warning("%s: fenced out (%s); waiting for the lease again", self.name, error)
                    return True
                crashes += 1
                wait = min(RESTART_MAX_S, RESTART_FIRST_S * 2 ** (crashes - 1))
                log.error("%s crashed; restarting in %.1fs", self.name, wait, exc_info=error)
                if not await self._while_held(lease, asyncio.create_task(asyncio.sleep(wait))):
                    lost = True
                    return True
                work = asyncio.create_task(self._run(), name=self.name)
        finally:
            metrics.SERVICE_OWNED.labels(self.name).set(0)
            self.ownership.valid_until = -math.inf
            if not work.done():
                work.cancel()
                await asyncio.gather(work, return_exceptions=True)
            if lost and self._on_lost is not None:
                try:
                    await self._on_lost()
                except Exception:
                    log.exception("%s: cleaning up after losing the lease failed", self.name)
            with contextlib.suppress(Exception):  # a no-op when the lease went to someone else
                await self.leases.release(lease)

    async def _while_held(self, lease: Lease, task: asyncio.Task[None]) -> bool:
        """Renew the lease until `task` ends (True); False (and `task` cancelled) once it is lost."""
        while True:
            done, _ = await asyncio.wait({task}, timeout=self.every_s)
            if done:
                return True
            if not await self._renew(lease):
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return False

    async def _renew(self, lease: Lease) -> bool:
        asked_at = time.monotonic()
        try:
            renewed = await self.leases.renew(lease, self.ttl_s)
        except Exception:  # the store is unreachable: keep going while the lease lasts
            log.warning("%s: renewing the lease failed", self.name, exc_info=True)
            return self.ownership.held(self.every_s)
        if renewed is None:
            return False
        self._held(renewed, asked_at)
        return True

    def info(self) -> dict[str, Any]:
        return {"owner": self.holder, "here": self.owned, "token": self.ownership.token, "takeovers": self.takeovers}
