"""A projection that cannot commit a batch stops there (visible in /health) and is retried; it
never moves on past events it did not apply."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from domain.events import JobConfig, JobCreated
from persistence.records import NewEvent
from projections.ports import Commit, Doc
from projections.registry import all_projections
from projections.runner import ProjectionRunner, ProjectionStalled


class CheckpointAlwaysMoves(SqliteReadModelStore):
    """Every commit loses a race, as if another runner kept moving the checkpoint."""

    refuse = True

    async def commit(
        self,
        projection: str,
        changes: Mapping[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
    ) -> bool:
        if self.refuse:
            return False
        return await super().commit(projection, changes, from_checkpoint, to_checkpoint, fence)

    async def commit_many(self, commits: Sequence[Commit]) -> list[bool]:
        return [False] * len(commits) if self.refuse else await super().commit_many(commits)


async def test_a_batch_that_cannot_commit_stops_the_projection(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    read_models = CheckpointAlwaysMoves(tmp_path / "rm.db")
    await read_models.open()
    try:
        created = JobCreated(job_id="j", config=JobConfig(name="n", rounds=1, min_clients=1))
        await store.append("job-j", [NewEvent.from_event(str(uuid.uuid4()), created, {"actor": "t"})], 0)
        runner = ProjectionRunner(read_models, all_projections())
        with pytest.raises(ProjectionStalled):
            await runner.catch_up(store)
        assert runner.position == 0 and runner.stalled and "job_board" in runner.stalled
        assert await read_models.get("job_board", "j") is None
        read_models.refuse = False  # the retry goes through, from the same place
        await runner.catch_up(store)
        assert runner.position == 1 and runner.stalled is None
        assert (await read_models.get("job_board", "j") or {})["job_id"] == "j"
    finally:
        await read_models.close()
        await store.close()
