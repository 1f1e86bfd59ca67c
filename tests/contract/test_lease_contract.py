"""Leases and fencing: one owner per background service at a time, on every store.

Two "replicas" are two stores opened on one location; the clock is the test's, so expiry is a
decision of the test. A paused owner that wakes up after its lease ran out must be refused by the
read-model store (FencedOut), not merely asked to stop."""

from __future__ import annotations

import asyncio

import pytest

from persistence.ports import FencedOut
from projections.ports import Commit, ReadModelStore
from tests.contract.conftest import Clock, LeaseFactory

TTL = 5.0


async def test_one_owner_at_a_time_and_takeover_after_expiry(lease_stores: tuple[LeaseFactory, Clock]) -> None:
    make, clock = lease_stores
    a, b = await make(), await make()
    first = await a.acquire("projections", "a", TTL)
    assert first is not None and first.owner == "a"
    assert await b.acquire("projections", "b", TTL) is None
    again = await a.acquire("projections", "a", TTL)  # the holder asking again keeps its token
    assert again is not None and again.token == first.token
    holder = await b.holder("projections")
    assert holder is not None and holder.owner == "a"

    clock.now += TTL + 0.1  # a stops renewing: its time runs out
    assert await b.holder("projections") is None
    taken = await b.acquire("projections", "b", TTL)
    assert taken is not None and taken.owner == "b" and taken.token > first.token
    assert await a.renew(first, TTL) is None  # the old owner learns it lost the lease
    assert await a.acquire("projections", "a", TTL) is None


async def test_a_late_renewal_keeps_a_lease_nobody_took(lease_stores: tuple[LeaseFactory, Clock]) -> None:
    """Expiry lets another replica take over; it does not take the service from a lone owner
    whose renewal came late (a stalled event loop on a busy machine): same token, nothing fenced."""
    make, clock = lease_stores
    a, b = await make(), await make()
    lease = await a.acquire("runtime", "a", TTL)
    assert lease is not None
    clock.now += TTL * 3
    late = await a.renew(lease, TTL)
    assert late is not None and late.token == lease.token
    assert await b.acquire("runtime", "b", TTL) is None  # held again


async def test_renew_extends_and_release_hands_over_at_once(lease_stores: tuple[LeaseFactory, Clock]) -> None:
    make, clock = lease_stores
    a, b = await make(), await make()
    lease = await a.acquire("relay", "a", TTL)
    assert lease is not None
    clock.now += TTL - 1
    renewed = await a.renew(lease, TTL)
    assert renewed is not None and renewed.token == lease.token
    clock.now += TTL - 1  # past the first expiry, inside the renewed one
    assert await b.acquire("relay", "b", TTL) is None
    await a.release(renewed)
    taken = await b.acquire("relay", "b", TTL)
    assert taken is not None and taken.token > lease.token


async def test_leases_are_independent_per_service(lease_stores: tuple[LeaseFactory, Clock]) -> None:
    make, _ = lease_stores
    a, b = await make(), await make()
    assert await a.acquire("projections", "a", TTL) is not None
    assert await b.acquire("relay", "b", TTL) is not None
    assert await b.acquire("projections", "b", TTL) is None


async def test_racing_acquirers_get_one_lease(lease_stores: tuple[LeaseFactory, Clock]) -> None:
    make, _ = lease_stores
    stores = [await make() for _ in range(4)]
    won = await asyncio.gather(*(s.acquire("runtime", f"r{n}", TTL) for n, s in enumerate(stores)))
    assert len([lease for lease in won if lease is not None]) == 1


async def test_a_paused_owner_is_fenced_out_of_the_read_models(
    lease_stores: tuple[LeaseFactory, Clock], read_models: ReadModelStore
) -> None:
    make, clock = lease_stores
    a, b = await make(), await make()
    old = await a.acquire("projections", "a", TTL)
    assert old is not None
    assert await read_models.commit("jobs", {"j1": (1, {"v": 1})}, 0, 1, fence=old.token)

    clock.now += TTL + 1  # a pauses (GC, a stalled VM) past its lease; b takes over and writes
    new = await b.acquire("projections", "b", TTL)
    assert new is not None
    assert await read_models.commit("jobs", {"j1": (2, {"v": 2})}, 1, 2, fence=new.token)

    # a wakes up and writes what it computed before the pause: refused, nothing written
    with pytest.raises(FencedOut):
        await read_models.commit("jobs", {"j1": (3, {"v": "stale"})}, 2, 3, fence=old.token)
    with pytest.raises(FencedOut):
        await read_models.commit_many([Commit("jobs", {"j2": (3, {"v": "stale"})}, 2, 3, old.token)])
    with pytest.raises(FencedOut):
        await read_models.set_checkpoint("jobs", 99, fence=old.token)
    assert await read_models.get("jobs", "j1") == {"v": 2}
    assert await read_models.get("jobs", "j2") is None
    assert await read_models.get_checkpoint("jobs") == 2
    assert await read_models.commit("jobs", {"j1": (3, {"v": 3})}, 2, 3, fence=new.token)


async def test_unfenced_checkpoints_still_work(read_models: ReadModelStore) -> None:
    """Rebuilds and single-process tools write without a token; a fenced writer may follow."""
    await read_models.set_checkpoint("relay", 7)
    assert await read_models.get_checkpoint("relay") == 7
    await read_models.set_checkpoint("relay", 9, fence=3)
    with pytest.raises(FencedOut):
        await read_models.set_checkpoint("relay", 10, fence=2)
    assert await read_models.get_checkpoint("relay") == 9
