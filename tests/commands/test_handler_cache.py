"""The command handler decides on its cached state without asking the store first; a cache made
stale by another process's writes never leads to a wrong decision or a lost update."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from adapters.sqlite_event_store import SqliteEventStore
from commands.handlers import TRAINING_JOB, CommandHandler, new_id
from domain import commands as c
from domain.errors import DomainError
from domain.events import JobConfig
from persistence.ports import ConcurrencyError

CONFIG = JobConfig(name="n", rounds=3, min_clients=1, runtime="external")


@pytest.fixture
async def two_processes(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two stores on one file, each with its own handler: what two replicas see."""
    a = await SqliteEventStore(tmp_path / "e.db").open()
    b = await SqliteEventStore(tmp_path / "e.db").open()
    yield CommandHandler(a, TRAINING_JOB), CommandHandler(b, TRAINING_JOB)
    await a.close()
    await b.close()


async def test_a_stale_cache_does_not_decide_twice(two_processes: tuple[CommandHandler, CommandHandler]) -> None:  # type: ignore[type-arg]
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))  # first caches "pending"
    await second.execute("j", c.CancelJob(reason="by the other replica"))
    with pytest.raises(DomainError, match="terminal"):
        await first.execute("j", c.CancelJob(reason="again"))  # not a second JobCancelled
    events = await first.store.read_stream("job-j")
    assert [e.type for e in events] == ["JobCreated", "JobCancelled"]


async def test_a_stale_cache_appends_on_the_stored_state(two_processes: tuple[CommandHandler, CommandHandler]) -> None:  # type: ignore[type-arg]
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))
    await second.execute("j", c.JoinJob(client_id="b"))
    await first.execute("j", c.JoinJob(client_id="a"))  # cached version 1; the store is at 2
    _, state = await first.load("j")
    assert state.clients == ("b", "a")
    assert [e.version for e in await first.store.read_stream("job-j")] == [1, 2, 3]


async def test_if_match_is_judged_by_the_store(two_processes: tuple[CommandHandler, CommandHandler]) -> None:  # type: ignore[type-arg]
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))
    await second.execute("j", c.JoinJob(client_id="b"))
    with pytest.raises(ConcurrencyError) as stale:
        await first.execute("j", c.JoinJob(client_id="a"), expected_version=1)
    assert stale.value.actual == 2
    result = await first.execute("j", c.JoinJob(client_id="a"), expected_version=2)  # the cache said 1
    assert result.version == 3


def test_ids_are_version_4_uuids_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:1000]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
