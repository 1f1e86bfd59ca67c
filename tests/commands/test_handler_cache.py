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


class CountingStore:
    """The store, counting the reads of a stream's head."""

    def __init__(self, store: SqliteEventStore) -> None:
        self._store = store
        self.head_reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def stream_version(self, stream_id: str) -> int:
        self.head_reads += 1
        return await self._store.stream_version(stream_id)


async def test_a_new_stream_is_created_without_reading_its_head(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        counting = CountingStore(store)
        handler = CommandHandler(counting, TRAINING_JOB)  # type: ignore[arg-type]
        result = await handler.execute("j", c.StartJob(job_id="j", config=CONFIG))
        assert result.version == 1 and counting.head_reads == 0
    finally:
        await store.close()


async def test_an_uncached_existing_stream_is_not_created_twice(
    two_processes: tuple[CommandHandler, CommandHandler],  # type: ignore[type-arg]
) -> None:
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))
    with pytest.raises(DomainError, match="exists"):  # second has never seen job j
        await second.execute("j", c.StartJob(job_id="j", config=CONFIG))
    assert [e.type for e in await first.store.read_stream("job-j")] == ["JobCreated"]


async def test_an_uncached_existing_stream_takes_commands_on_its_stored_state(
    two_processes: tuple[CommandHandler, CommandHandler],  # type: ignore[type-arg]
) -> None:
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))
    await first.execute("j", c.JoinJob(client_id="a"))
    result = await second.execute("j", c.JoinJob(client_id="b"))  # decided on the stored state
    assert result.version == 3
    _, state = await second.load("j")
    assert state.clients == ("a", "b")


async def test_if_match_on_an_uncached_stream_is_judged_by_the_store(
    two_processes: tuple[CommandHandler, CommandHandler],  # type: ignore[type-arg]
) -> None:
    first, second = two_processes
    await first.execute("j", c.StartJob(job_id="j", config=CONFIG))
    with pytest.raises(ConcurrencyError) as stale:  # the guess "new stream, version 0" is not trusted
        await second.execute("j", c.CancelJob(reason="x"), expected_version=0)
    assert stale.value.actual == 1
    assert (await second.execute("j", c.CancelJob(reason="x"), expected_version=1)).version == 2


async def test_an_uncached_missing_stream_still_refuses_what_needs_one(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    try:
        with pytest.raises(DomainError):
            await CommandHandler(store, TRAINING_JOB).execute("nope", c.CancelJob(reason="x"))
        assert await store.stream_version("job-nope") == 0
    finally:
        await store.close()


def test_ids_are_version_4_uuids_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for i in ids[:1000]:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
