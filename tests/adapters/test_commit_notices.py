"""Commit notices between stores on one SQLite file (replicas on one data dir). Each store here
is opened on its own, as another process would: it binds its own socket. The stores' timed
re-reads are set to an hour, so what arrives arrives by notice."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path

from adapters.commit_notices import CommitNotices
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from domain.events import JobConfig, JobCreated
from persistence.records import NewEvent, RecordedEvent
from projections.ports import DocChange
from projections.registry import all_projections
from projections.runner import ProjectionRunner

HOUR = 3600.0


def _created(job: str) -> NewEvent:
    event = JobCreated(job_id=job, config=JobConfig(name=job, rounds=1, min_clients=1))
    return NewEvent.from_event(str(uuid.uuid4()), event, {"actor": "t"})


async def test_a_feed_wakes_for_a_commit_made_through_another_store(tmp_path: Path) -> None:
    here = await SqliteEventStore(tmp_path / "e.db", feed_fallback_s=HOUR).open()
    there = await SqliteEventStore(tmp_path / "e.db", feed_fallback_s=HOUR).open()
    try:
        feed = here.subscribe(0)
        first = asyncio.ensure_future(anext(aiter(feed)))
        await asyncio.sleep(0.05)  # the subscriber is waiting on an empty feed
        assert not first.done()
        await there.append("job-a", [_created("a")], 0)
        async with asyncio.timeout(10):
            batch: list[RecordedEvent] = await first
        assert [(e.stream_id, e.position) for e in batch] == [("job-a", 1)]
        first.cancel()
    finally:
        await there.close()
        await here.close()
    assert not CommitNotices(tmp_path / "e.db").dir.exists(), "the stores remove their sockets when they close"


async def test_a_follower_passes_on_what_another_stores_projections_commit(tmp_path: Path) -> None:
    store = await SqliteEventStore(tmp_path / "e.db").open()
    owner_views = await SqliteReadModelStore(tmp_path / "rm.db").open()
    follower_views = await SqliteReadModelStore(tmp_path / "rm.db").open()
    told: list[DocChange] = []
    seen = asyncio.Event()

    def listener(changes: list[DocChange]) -> None:
        told.extend(changes)
        if any(c.projection == "job_board" and c.key == "b" for c in changes):
            seen.set()

    owner = ProjectionRunner(owner_views, all_projections())
    follower = ProjectionRunner(follower_views, all_projections(), [listener])
    following = asyncio.create_task(follower.follow(interval_s=HOUR))
    try:
        await asyncio.sleep(0.05)  # the follower has read the checkpoints and waits
        await store.append("job-b", [_created("b")], 0)
        await owner.catch_up(store)
        async with asyncio.timeout(10):
            await seen.wait()
        assert follower.position == 1
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await follower_views.close()
        await owner_views.close()
        await store.close()


async def test_a_socket_left_by_a_killed_process_is_removed_and_the_others_still_hear(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    left = CommitNotices(db).dir / "left-behind.sock"
    left.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(left))
    dead.close()  # bound, then gone without unlinking: as after SIGKILL

    heard: list[int] = []
    got = asyncio.Event()

    def hear(value: int) -> None:
        heard.append(value)
        got.set()

    listener, sender = CommitNotices(db), CommitNotices(db)
    assert listener.listen(asyncio.get_running_loop(), hear)
    assert sender.listen(asyncio.get_running_loop(), lambda v: None)
    try:
        sender.send(7)
        async with asyncio.timeout(10):
            await got.wait()
        assert heard == [7]
        assert not left.exists()
    finally:
        sender.close()
        listener.close()
