"""One bad append never fails the others committed with it: the store refuses what it cannot
read back (for that append alone) and isolates any failure inside a group commit."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest

from adapters.sqlite_event_store import SqliteEventStore
from persistence.encoding import UnstorableEvent
from persistence.ports import EventStore
from persistence.records import NewEvent
from tests.contract.conftest import StoreFactory


def new(data: dict[str, Any], event_id: str | None = None) -> NewEvent:
    return NewEvent(event_id or str(uuid.uuid4()), "Thing", 1, data, {"actor": "test"})


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


POISON: list[dict[str, Any]] = [
    {"n": 2**64},
    {"n": 2**53},
    {"n": -(2**63)},
    {"x": float("nan")},
    {"x": float("inf")},
    {"x": [1.0, float("-inf")]},
    {"s": "lone \ud800 surrogate"},
    {"\udfff": "key"},
    {"d": deep(300)},
    {"big": "x" * (13 * 1024 * 1024)},
]


async def test_poisoned_and_valid_appends_interleaved_under_concurrency(store_factory: StoreFactory) -> None:
    store = await store_factory()
    rng = random.Random(7)
    plan = [("valid", i) if rng.random() < 0.6 else ("poison", i) for i in range(120)]

    async def one(kind: str, i: int) -> tuple[str, int, object]:
        await asyncio.sleep(rng.random() * 0.01)
        data = {"i": i, "v": 2**53 - 1, "f": 1e308, "s": "é😀"} if kind == "valid" else POISON[i % len(POISON)]
        try:
            return kind, i, await store.append(f"s-{i}", [new({"first": i}), new(data)], 0)
        except Exception as exc:
            return kind, i, exc

    outcomes = await asyncio.gather(*(one(k, i) for k, i in plan))
    for kind, i, outcome in outcomes:
        if kind == "valid":
            assert not isinstance(outcome, BaseException), (i, outcome)
            events = await store.read_stream(f"s-{i}")
            assert [e.data for e in events] == [{"first": i}, {"i": i, "v": 2**53 - 1, "f": 1e308, "s": "é😀"}]
        else:
            assert isinstance(outcome, UnstorableEvent), (i, outcome)
            assert await store.stream_version(f"s-{i}") == 0  # nothing of it, not even its valid event
    feed = await store.read_all(0, 10_000)
    assert [e.position for e in feed] == list(range(1, len(feed) + 1))
    assert len(feed) == 2 * sum(1 for k, _ in plan if k == "valid")


async def test_an_unexpected_failure_in_one_append_fails_it_alone(store: EventStore) -> None:
    """A constraint the store only learns about while writing (an event id already stored)."""
    taken = str(uuid.uuid4())
    await store.append("first", [new({"a": 1}, taken)], 0)
    results = await asyncio.gather(
        store.append("ok-1", [new({"b": 1})], 0),
        store.append("dup", [new({"c": 1}), new({"c": 2}, taken)], 0),
        store.append("ok-2", [new({"d": 1})], 0),
        return_exceptions=True,
    )
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException), results
    assert isinstance(results[1], Exception) and await store.stream_version("dup") == 0
    assert await store.stream_version("ok-1") == 1 and await store.stream_version("ok-2") == 1


@pytest.mark.parametrize("poison", POISON[:8])
async def test_the_store_refuses_what_it_cannot_read_back(tmp_path: Any, poison: dict[str, Any]) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        with pytest.raises(UnstorableEvent):
            await store.append("s", [new(poison)], 0)
        assert await store.head_position() == 0
    finally:
        await store.close()
