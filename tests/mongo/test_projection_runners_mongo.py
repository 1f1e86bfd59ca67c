"""Several projection runners (processes) on one Mongo read-model store, one of them dying right
after its commit point: every event is applied exactly once (a read-modify-write counter would
show a double apply or a loss), and the checkpoint ends at the head."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from adapters.mongo_event_store import MongoEventStore
from adapters.mongo_read_models import CHECKPOINTS, MongoReadModelStore
from domain.events import Event
from persistence.records import NewEvent, RecordedEvent
from projections.ports import Doc
from projections.runner import ProjectionRunner
from tests.mongo.standin import MongoTestBackend, Recorder


class JoinCounter:
    """Counts ClientJoined per client: applying an event twice, or losing one, changes `n`."""

    name = "join_counter"
    fresh_on: tuple[type[Event], ...] = ()

    def keys(self, event: Event) -> list[str]:
        return [str(getattr(event, "client_id", ""))] if event.type == "ClientJoined" else []

    def apply(self, doc: Doc | None, event: Event, recorded: RecordedEvent) -> Doc | None:
        n = (doc or {}).get("n", 0) + 1
        return {"n": n, "last": recorded.position}


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [1, 3])
async def test_concurrent_runners_and_a_crash_apply_every_event_once(backend: MongoTestBackend, crash_at: int) -> None:
    store = await MongoEventStore(backend.connect()).open()
    expected: dict[str, int] = {}
    for i in range(60):
        client = f"c{i % 7}"
        expected[client] = expected.get(client, 0) + 1
        event = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": client}, {})
        await store.append(f"job-{i % 5}", [event], expected_version=None)
    feed = await store.read_all(0, 1000)

    recorder = Recorder()
    commits = 0

    async def die_after_commit_point(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal commits
        commits += 1
        if commits == crash_at:
            raise Crash  # the checkpoint moved; the batch's documents are not written yet

    recorder.after[(CHECKPOINTS, "find_one_and_update")] = die_after_commit_point
    dying_rm = await MongoReadModelStore(backend.connect(recorder)).open()
    stores = [await MongoReadModelStore(backend.connect()).open() for _ in range(2)]

    async def run(rm: MongoReadModelStore, batch: int) -> None:
        runner = ProjectionRunner(rm, [JoinCounter()])
        for start in range(0, len(feed), batch):
            await runner.apply(feed[start : start + batch])

    try:
        results = await asyncio.gather(run(dying_rm, 4), run(stores[0], 7), run(stores[1], 11), return_exceptions=True)
        assert [type(r) for r in results] == [Crash, type(None), type(None)]
        survivor = stores[0]
        assert await survivor.get_checkpoint("join_counter") == feed[-1].position
        docs = await survivor.dump("join_counter")
        assert {k: d["n"] for k, d in docs.items()} == expected
        for key, doc in docs.items():
            assert doc["last"] == max(e.position for e in feed if e.data["client_id"] == key)
    finally:
        for rm in (dying_rm, *stores):
            await rm.close()
        await store.close()
