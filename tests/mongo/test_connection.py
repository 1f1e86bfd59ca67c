"""Connection settings: database name resolution, concerns, shared client leases, change-stream
wake-up on a replica set (simulated on the stand-in by answering `hello` like a replica set)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from adapters.mongo_client import MongoConnection, database_name, is_mongo_url, parse_write_concern
from adapters.mongo_event_store import MongoEventStore
from config.settings import Settings
from persistence.records import NewEvent, RecordedEvent
from tests.mongo.standin import MongoTestBackend, Recorder, RecordingDatabase


def test_database_name_resolution() -> None:
    assert database_name("mongodb://h1:27017,h2:27017/prod?replicaSet=rs0", "other") == "prod"
    assert database_name("mongodb://localhost:27017/?replicaSet=rs0", "mine") == "mine"
    assert database_name("mongodb://localhost:27017") == "flp"
    assert is_mongo_url("mongodb+srv://cluster.example.net/flp") and not is_mongo_url("sqlite:///x.db")


def test_concerns_default_to_majority_and_are_configurable() -> None:
    assert parse_write_concern("majority") == WriteConcern(w="majority")
    assert parse_write_concern("1") == WriteConcern(w=1)
    settings = Settings(store_url="mongodb://localhost:27017/?replicaSet=rs0", mongodb_database="flp_x")
    conn = MongoConnection.from_settings(settings)  # the driver connects lazily: no server needed
    db: Any = conn.db
    assert db.name == "flp_x"
    assert db.write_concern == WriteConcern(w="majority") and db.read_concern == ReadConcern("majority")
    custom = MongoConnection.from_url("mongodb://localhost/x", write_concern="1", read_concern="local")
    db = custom.db
    assert db.write_concern == WriteConcern(w=1) and db.read_concern == ReadConcern("local")
    for c in (conn, custom):
        c.lease()
        asyncio.run(c.release())


async def test_client_is_closed_by_the_last_lease() -> None:
    closed: list[bool] = []

    class Client:
        async def close(self) -> None:
            closed.append(True)

    conn = MongoConnection(Client(), RecordingDatabase(MongoTestBackend().database(), Recorder()))
    conn.lease()
    conn.lease()
    await conn.release()
    assert closed == []
    await conn.release()
    assert closed == [True]


class ReplicaSetLike(RecordingDatabase):
    """The stand-in, answering `hello` like a replica-set member; `watch` yields notifications
    pushed onto a queue (what a change stream delivers for inserts by other processes)."""

    def __init__(self, inner: Any, recorder: Recorder) -> None:
        super().__init__(inner, recorder)
        self.changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        self.recorder.record("$cmd", "command", args, kwargs)
        return {"isWritablePrimary": True, "setName": "rs0", "ok": 1.0}

    def __getitem__(self, name: str) -> Any:
        coll = super().__getitem__(name)
        queue = self.changes

        class Stream:
            async def __aenter__(self) -> Stream:
                return self

            async def __aexit__(self, *exc: object) -> None:
                return None

            def __aiter__(self) -> Stream:
                return self

            async def __anext__(self) -> dict[str, Any]:
                return await queue.get()

        class Watched:
            def __getattr__(self, attr: str) -> Any:
                return getattr(coll, attr)

            @property
            def name(self) -> str:
                return name

            async def watch(self, pipeline: list[dict[str, Any]], **kwargs: Any) -> Stream:
                recorder.record(name, "watch", (pipeline,), kwargs)
                return Stream()

        recorder = self.recorder
        return Watched()


async def test_change_stream_wakes_subscribers_for_other_processes_commits(backend: MongoTestBackend) -> None:
    recorder = Recorder()
    rs_db = ReplicaSetLike(backend.database(), recorder)
    follower = await MongoEventStore(MongoConnection(None, rs_db), poll_s=3600).open()
    writer = await MongoEventStore(backend.connect()).open()  # "another process": no in-process wake
    try:
        await asyncio.sleep(0)
        assert [c.args for c in recorder.of("$cmd")] == [("hello",)]  # a replica set: watch it
        assert [c.args for c in recorder.of("event_commits", "watch")] == [
            ([{"$match": {"operationType": "insert"}}, {"$project": {"documentKey": 1}}],)
        ]
        caught_up = asyncio.Event()

        async def seen_counter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            caught_up.set()  # the follower read the feed, found nothing, checked the counter

        recorder.after[("event_counters", "find_one")] = seen_counter
        feed = follower.subscribe(0)

        async def next_batch() -> list[RecordedEvent]:
            return await anext(feed)

        first = asyncio.create_task(next_batch())
        await caught_up.wait()  # now it waits (poll_s is an hour): only the change stream can wake it
        event = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": "c"}, {})
        await writer.append("s", [event], expected_version=0)
        await rs_db.changes.put({"_id": {"_data": "token"}, "documentKey": {"_id": 1}})
        batch = await asyncio.wait_for(first, timeout=30)
        assert [e.event_id for e in batch] == [event.event_id]
    finally:
        await follower.close()
        await writer.close()
