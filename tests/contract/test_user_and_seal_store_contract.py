"""The user store and the seal store contracts: the SQLite and MongoDB adapters pass the same
tests, so every replica on one MongoDB shares users, API keys and seals."""

from __future__ import annotations

import asyncio

import pytest

from domain.roles import Role
from persistence.ports import AlreadyExists, ApiKeyRecord, SealStore, UserRecord, UserStore
from persistence.seals import SealRecord

ALICE = UserRecord("alice", "hash-1", frozenset({Role.OPERATOR, Role.VIEWER}), "2026-12-01T00:00:00Z")
KEY = ApiKeyRecord("key-0123456789abcdef", "0" * 64, "bridge", frozenset({Role.INTEGRATOR}), "2026-12-01T00:00:00Z")


async def test_users_are_added_read_listed_updated_and_deleted(users: UserStore) -> None:
    assert await users.get_user("alice") is None
    await users.add_user(ALICE)
    assert await users.get_user("alice") == ALICE
    with pytest.raises(AlreadyExists):
        await users.add_user(ALICE)
    await users.add_user(UserRecord("bob", "h", frozenset({Role.AUDITOR}), "2026-12-01T00:00:01Z"))
    assert [u.name for u in await users.list_users()] == ["alice", "bob"]
    changed = UserRecord("alice", "hash-2", frozenset({Role.ADMIN}), ALICE.created_at, disabled=True)
    assert await users.update_user(changed)
    assert await users.get_user("alice") == changed
    assert not await users.update_user(UserRecord("nobody", "h", frozenset(), "t"))
    assert await users.delete_user("alice") and not await users.delete_user("alice")
    assert await users.get_user("alice") is None


async def test_concurrent_adds_of_one_name_let_exactly_one_in(users: UserStore) -> None:
    results = await asyncio.gather(*(users.add_user(ALICE) for _ in range(6)), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r is not None)


async def test_api_keys_are_added_read_and_revoked_once(users: UserStore) -> None:
    await users.add_api_key(KEY)
    assert await users.get_api_key(KEY.client_id) == KEY
    with pytest.raises(AlreadyExists):
        await users.add_api_key(KEY)
    assert [k.client_id for k in await users.list_api_keys()] == [KEY.client_id]
    assert await users.revoke_api_key(KEY.client_id)
    assert not await users.revoke_api_key(KEY.client_id)  # already revoked
    revoked = await users.get_api_key(KEY.client_id)
    assert revoked is not None and revoked.revoked
    assert await users.get_api_key("key-ffffffffffffffff") is None


def seal(position: int, stream: str = "job-a", version: int | None = None, text: str = "s") -> SealRecord:
    return SealRecord(position, stream, version or position, f"e{position}", f"{text}{position}")


async def test_seals_are_kept_once_and_read_by_range_and_stream(seals: SealStore) -> None:
    assert await seals.head() == 0
    await seals.put([seal(1), seal(2, "job-b", 1), seal(3, "job-a", 2)])
    await seals.put([seal(2, "job-b", 1, text="other")])  # a copy again: never replaced
    assert await seals.head() == 3
    assert [s.position for s in await seals.range(0)] == [1, 2, 3]
    assert [s.position for s in await seals.range(1, 2)] == [2]
    assert (await seals.range(1, 2))[0].seal == "s2"
    assert [s.version for s in await seals.for_stream("job-a")] == [1, 2]
    assert await seals.range(3) == []
