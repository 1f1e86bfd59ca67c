"""A runner that loses the projections lease mid-batch (its commit made, its listeners not told)
tells them once it follows the new owner: a replica's live subscribers miss nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from domain.events import JobConfig, JobCreated
from persistence.ports import FencedOut
from persistence.records import NewEvent
from projections.ports import Commit, DocChange
from projections.registry import all_projections
from projections.runner import ProjectionRunner


class FencedAfterCommit(SqliteReadModelStore):
    """Commits, then answers FencedOut: as MongoDB's per-projection commits do when the lease
    passes between two of them, or a cancellation that lands after a commit went through."""

    fence = False

    async def commit_many(self, commits: Sequence[Commit]) -> list[bool]:
        done = await super().commit_many(commits)
        if self.fence:
            raise FencedOut("the lease passed to another replica")
        return done


async def _create(store: SqliteEventStore, job: str) -> None:
    created = JobCreated(job_id=job, config=JobConfig(name=job, rounds=1, min_clients=1))
    await store.append(f"job-{job}", [NewEvent.from_event(str(uuid.uuid4()), created, {"actor": "t"})], 0)


async def test_a_runner_fenced_out_after_its_commit_tells_its_listeners_as_a_follower(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    read_models = FencedAfterCommit(tmp_path / "rm.db")
    await read_models.open()
    told: list[DocChange] = []
    second_told = asyncio.Event()

    def listener(changes: list[DocChange]) -> None:
        told.extend(changes)
        if any(c.projection == "job_board" and c.key == "second" for c in changes):
            second_told.set()

    runner = ProjectionRunner(read_models, all_projections(), [listener])
    try:
        await _create(store, "first")
        await runner.catch_up(store)
        assert {(c.projection, c.key) for c in told} >= {("job_board", "first")}

        await _create(store, "second")
        read_models.fence = True
        with pytest.raises(FencedOut):
            await runner.catch_up(store)
        assert (await read_models.get("job_board", "second")) is not None, "committed"
        assert not any(c.key == "second" for c in told), "but nobody was told"

        follower = asyncio.create_task(runner.follow(interval_s=0.01))
        try:
            async with asyncio.timeout(5):
                await second_told.wait()
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        assert sum(c.projection == "job_board" and c.key == "first" for c in told) == 1, "nothing told twice"
    finally:
        await read_models.close()
        await store.close()
