"""Every query, filter, update and index the Mongo adapters send, recorded and spelled out.

For a reviewer: each expected call below can be checked against MongoDB's documented semantics
(query operators, update operators, upsert, unique/partial indexes). Documents that are inserted
are shown by their field names; generated values (times, batch ids, hashes) are masked.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import Any

import pytest
from pymongo import ReplaceOne, ReturnDocument, UpdateOne

from adapters.mongo_artifact_store import MongoArtifactStore
from adapters.mongo_event_store import MongoEventStore
from adapters.mongo_read_models import ORPHAN_AGE, MongoReadModelStore
from persistence.ports import ConcurrencyError
from persistence.records import NewEvent
from tests.mongo.standin import MongoTestBackend, Recorder

AFTER = ReturnDocument.AFTER


def ev(n: int = 0) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": f"c{n}"}, {"actor": "t"})


def shape(value: Any) -> Any:
    """Inserted documents -> their sorted field names (nested `events` likewise); masks."""
    if isinstance(value, ReplaceOne | UpdateOne):
        return (type(value).__name__, shape(value._filter), shape(value._doc), value._upsert)
    if isinstance(value, datetime.datetime):
        return "<time>"
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(shape(v) for v in value)
    if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
        return "<batch>"
    return value


def fields(doc: dict[str, Any]) -> list[str]:
    return sorted(doc)


def calls(recorder: Recorder) -> list[tuple[str, str, Any, Any]]:
    out = []
    for c in recorder.calls:
        args: Any = c.args
        if c.method == "insert_one":
            args = (fields(c.args[0]),)
        elif c.method == "insert_many":
            args = ([fields(d) for d in c.args[0]],)
        out.append((c.collection, c.method, shape(args), shape(c.kwargs)))
    recorder.calls.clear()
    return out


COMMIT_FIELDS = [
    "_id",
    "events",
    "first_version",
    "last_hash",
    "last_position",
    "last_version",
    "recorded_at",
    "stream_id",
]
EVENT_FIELDS = [
    "data",
    "event_id",
    "hash",
    "metadata",
    "position",
    "prev_hash",
    "schema_version",
    "seal",
    "stream_id",
    "type",
    "version",
]
STREAM_HEAD = (
    "event_commits",
    "find_one",
    ({"stream_id": "s"}, {"last_version": 1, "last_hash": 1}),
    {"sort": [("first_version", -1)]},
)
ALLOCATE_1 = (
    "event_counters",
    "find_one_and_update",
    ({"_id": "position"}, {"$inc": {"seq": 1}}),
    {"upsert": True, "return_document": AFTER},
)


async def test_event_store_queries(backend: MongoTestBackend, recorder: Recorder) -> None:
    # watch=False: no change-stream watcher (on a real replica set its calls would interleave
    # with the ones under test); `hello` + watch are covered in test_connection.py
    store = await MongoEventStore(backend.connect(recorder), watch=False).open()
    try:
        commits_only = {"stream_id": {"$exists": True}}
        assert calls(recorder) == [
            (
                "event_commits",
                "create_index",
                ([("stream_id", 1), ("first_version", 1)],),
                {"name": "stream_version_unique", "unique": True, "partialFilterExpression": commits_only},
            ),
            (
                "event_commits",
                "create_index",
                ([("last_position", 1)],),
                {"name": "last_position_unique", "unique": True},
            ),
            (
                "event_commits",
                "create_index",
                ([("idempotency_key", 1)],),
                {
                    "name": "idempotency_key_unique",
                    "unique": True,
                    "partialFilterExpression": {"idempotency_key": {"$exists": True}},
                },
            ),
            (
                "event_commits",
                "create_index",
                ([("events.event_id", 1)],),
                {"name": "event_id_unique", "unique": True, "partialFilterExpression": commits_only},
            ),
            ("event_counters", "update_one", ({"_id": "position"}, {"$setOnInsert": {"seq": 0}}), {"upsert": True}),
            ("event_counters", "find_one", ({"_id": "safe_hwm"},), {}),
        ]

        # append: stream head, expected-version check, allocate positions, insert one commit
        await store.append("s", [ev(1)], expected_version=0)
        assert calls(recorder) == [STREAM_HEAD, ALLOCATE_1, ("event_commits", "insert_one", (COMMIT_FIELDS,), {})]
        (doc,) = await backend.database()["event_commits"].find({}).to_list(None)
        assert fields(doc["events"][0]) == EVENT_FIELDS
        assert (doc["_id"], doc["last_position"], doc["first_version"], doc["last_version"]) == (1, 1, 1, 1)

        # append with an idempotency key: look the key up first; the key is stored on the commit
        await store.append("s", [ev(2)], expected_version=1, idempotency_key="k")
        assert calls(recorder) == [
            ("event_commits", "find_one", ({"idempotency_key": "k"},), {}),
            STREAM_HEAD,
            ALLOCATE_1,
            ("event_commits", "insert_one", (sorted([*COMMIT_FIELDS, "idempotency_key"]),), {}),
        ]

        # a stale expected version is refused before any position is allocated
        with pytest.raises(ConcurrencyError):
            await store.append("s", [ev(3)], expected_version=0)
        assert calls(recorder) == [STREAM_HEAD]

        # a conflict found by the unique index: writer A read the stream at version 2, B commits
        # version 3 first; A's insert fails (E11000 on stream_version_unique), A marks its range
        # abandoned, then diagnoses (event ids already stored? the stream's version now?)
        other = await MongoEventStore(backend.connect()).open()
        paused, release = asyncio.Event(), asyncio.Event()

        async def pause(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            paused.set()
            await release.wait()

        recorder.before[("event_commits", "insert_one")] = pause
        late_event = ev(4)
        late = asyncio.create_task(store.append("s", [late_event], expected_version=2))
        await paused.wait()
        del recorder.before[("event_commits", "insert_one")]
        await other.append("s", [ev(5)], expected_version=2)
        await other.close()
        release.set()
        with pytest.raises(ConcurrencyError):
            await late
        assert calls(recorder) == [
            STREAM_HEAD,
            ALLOCATE_1,
            ("event_commits", "insert_one", (COMMIT_FIELDS,), {}),
            ("event_commits", "insert_one", (["_id", "abandoned", "last_position"],), {}),
            (
                "event_commits",
                "find_one",
                ({"stream_id": {"$exists": True}, "events.event_id": {"$in": [late_event.event_id]}}, {"_id": 1}),
                {},
            ),
            ("event_commits", "find_one", ({"stream_id": "s"}, {"last_version": 1}), {"sort": [("first_version", -1)]}),
        ]
        marker = await backend.database()["event_commits"].find_one({"_id": 3})
        assert marker == {"_id": 3, "last_position": 3, "abandoned": True}

        await store.read_stream("s", 1, 2)
        assert calls(recorder) == [
            (
                "event_commits",
                "find",
                ({"stream_id": "s", "last_version": {"$gte": 1}, "first_version": {"$lte": 2}},),
                {"sort": [("first_version", 1)]},
            )
        ]
        await store.read_stream("s")
        assert calls(recorder) == [
            (
                "event_commits",
                "find",
                ({"stream_id": "s", "last_version": {"$gte": 1}},),
                {"sort": [("first_version", 1)]},
            )
        ]
        await store.stream_version("s")
        assert calls(recorder) == [
            ("event_commits", "find_one", ({"stream_id": "s"}, {"last_version": 1}), {"sort": [("first_version", -1)]})
        ]
        await store.find_idempotent("k")
        assert calls(recorder) == [("event_commits", "find_one", ({"idempotency_key": "k"},), {})]

        # global feed: commits and markers by last_position; the counter only when caught up
        assert [e.position for e in await store.read_all(0, 10)] == [1, 2, 4]  # 3 is a marker
        assert calls(recorder) == [
            ("event_commits", "find", ({"last_position": {"$gt": 0}},), {"sort": [("last_position", 1)], "limit": 10}),
        ]
        assert await store.read_all(4, 10) == []
        assert calls(recorder) == [
            ("event_commits", "find", ({"last_position": {"$gt": 4}},), {"sort": [("last_position", 1)], "limit": 10}),
            ("event_counters", "find_one", ({"_id": "position"},), {}),
        ]

        # safe high-water mark: walk from the cached mark, then persist a hint with $lt guard
        assert await store.head_position() == 4
        assert calls(recorder) == [
            (
                "event_commits",
                "find",
                ({"last_position": {"$gt": 0}}, {"_id": 1, "last_position": 1, "stream_id": 1}),
                {"sort": [("last_position", 1)], "limit": 500},
            ),
            ("event_counters", "find_one", ({"_id": "position"},), {}),
            (
                "event_counters",
                "update_one",
                ({"_id": "safe_hwm", "position": {"$lt": 4}}, {"$set": {"position": 4, "head_event": 4}}),
                {"upsert": True},
            ),
        ]
    finally:
        await store.close()


async def test_reader_marks_an_abandoned_position(backend: MongoTestBackend, recorder: Recorder) -> None:
    store = await MongoEventStore(backend.connect(recorder), abandon_after_s=0, watch=False).open()
    try:
        await backend.database()["event_counters"].update_one({"_id": "position"}, {"$inc": {"seq": 1}})
        recorder.calls.clear()
        assert await store.read_all(0, 10) == []
        assert calls(recorder) == [
            ("event_commits", "find", ({"last_position": {"$gt": 0}},), {"sort": [("last_position", 1)], "limit": 10}),
            ("event_counters", "find_one", ({"_id": "position"},), {}),
            ("event_commits", "insert_one", (["_id", "abandoned", "last_position"],), {}),
            # read again from the same cursor: the marker is stepped over, then caught up
            ("event_commits", "find", ({"last_position": {"$gt": 0}},), {"sort": [("last_position", 1)], "limit": 10}),
            ("event_counters", "find_one", ({"_id": "position"},), {}),
        ]
        marker = await backend.database()["event_commits"].find_one({"_id": 1})
        assert marker == {"_id": 1, "last_position": 1, "abandoned": True}

        # a cursor that is not the end of a stored document: is position-1 the end of one?
        await backend.database()["event_counters"].update_one({"_id": "position"}, {"$inc": {"seq": 2}})
        recorder.calls.clear()
        assert await store.read_all(2, 10) == []
        assert calls(recorder) == [
            ("event_commits", "find", ({"last_position": {"$gt": 2}},), {"sort": [("last_position", 1)], "limit": 10}),
            ("event_counters", "find_one", ({"_id": "position"},), {}),
            ("event_commits", "find_one", ({"last_position": 2}, {"_id": 1}), {}),
        ]
    finally:
        await store.close()


async def test_read_model_queries(backend: MongoTestBackend, recorder: Recorder) -> None:
    rm = await MongoReadModelStore(backend.connect(recorder)).open()
    try:
        opened = calls(recorder)
        assert opened[:5] == [
            (
                "read_models",
                "create_index",
                ([("projection", 1), ("key", 1)],),
                {"name": "projection_key_unique", "unique": True},
            ),
            ("read_models", "create_index", ([("projection", 1), ("position", 1)],), {"name": "projection_position"}),
            ("read_model_batches", "create_index", ([("batch", 1)],), {"name": "batch"}),
            ("read_model_batches", "create_index", ([("projection", 1)],), {"name": "projection"}),
            ("projection_checkpoints", "find", ({"pending": {"$ne": None}}, {"pending": 1}), {}),
        ]
        assert opened[5:] == [("read_model_batches", "delete_many", ({"created_at": {"$lt": "<time>"}},), {})]
        assert datetime.timedelta(hours=1) == ORPHAN_AGE

        live = {"$ne": None}
        assert await rm.commit("p", {"a": (1, {"x": 1}), "b": (2, None)}, 0, 2)
        staged = ["_id", "batch", "created_at", "doc", "key", "position", "projection"]
        assert calls(recorder) == [
            ("projection_checkpoints", "find_one", ({"_id": "p"},), {}),
            ("read_model_batches", "insert_many", ([staged, staged],), {"ordered": False}),
            (
                "projection_checkpoints",
                "find_one_and_update",
                ({"_id": "p", "position": 0, "pending": None}, {"$set": {"position": 2, "pending": "<batch>"}}),
                {"upsert": True, "return_document": AFTER},
            ),
            (
                "read_models",
                "bulk_write",
                (
                    [
                        (
                            "ReplaceOne",
                            {"projection": "p", "key": "a", "position": {"$lt": 1}},
                            {"projection": "p", "key": "a", "position": 1, "doc": {"x": 1}},
                            True,
                        ),
                        (
                            "ReplaceOne",
                            {"projection": "p", "key": "b", "position": {"$lt": 2}},
                            {"projection": "p", "key": "b", "position": 2, "doc": None},
                            True,
                        ),
                    ],
                ),
                {"ordered": False},
            ),
            (
                "projection_checkpoints",
                "update_one",
                ({"_id": "p", "pending": "<batch>"}, {"$set": {"pending": None}}),
                {},
            ),
            ("read_model_batches", "delete_many", ({"batch": "<batch>"},), {}),
        ]
        # a later commit does not upsert the checkpoint (it must exist at `from`)
        assert not await rm.commit("p", {"a": (3, {"x": 2})}, 1, 3)
        assert calls(recorder) == [("projection_checkpoints", "find_one", ({"_id": "p"},), {})]
        assert await rm.commit("p", {}, 2, 3)
        assert calls(recorder) == [
            ("projection_checkpoints", "find_one", ({"_id": "p"},), {}),
            (
                "projection_checkpoints",
                "find_one_and_update",
                ({"_id": "p", "position": 2, "pending": None}, {"$set": {"position": 3, "pending": None}}),
                {"upsert": False, "return_document": AFTER},
            ),
        ]

        await rm.get("p", "a")
        assert calls(recorder) == [
            ("read_models", "find_one", ({"projection": "p", "key": "a", "doc": live}, {"doc": 1}), {})
        ]
        await rm.get_many("p", ["a", "b"])
        assert calls(recorder) == [
            (
                "read_models",
                "find",
                ({"projection": "p", "key": {"$in": ["a", "b"]}, "doc": live}, {"key": 1, "doc": 1}),
                {},
            )
        ]
        await rm.list_docs("p", limit=5, offset=10)
        assert calls(recorder) == [
            (
                "read_models",
                "find",
                ({"projection": "p", "doc": live}, {"doc": 1}),
                {"sort": [("key", 1)], "skip": 10, "limit": 5},
            )
        ]
        await rm.count("p")
        assert calls(recorder) == [("read_models", "count_documents", ({"projection": "p", "doc": live},), {})]
        await rm.changed_after("p", 0, key="a")
        assert calls(recorder) == [
            (
                "read_models",
                "find",
                (
                    {"projection": "p", "position": {"$gt": 0}, "doc": live, "key": "a"},
                    {"key": 1, "position": 1, "doc": 1},
                ),
                {"sort": [("position", 1), ("key", 1)]},
            )
        ]
        await rm.dump("p")
        assert calls(recorder) == [
            ("read_models", "find", ({"projection": "p", "doc": live}, {"key": 1, "doc": 1}), {"sort": [("key", 1)]})
        ]
        await rm.set_checkpoint("sup", 4)
        assert calls(recorder) == [
            ("projection_checkpoints", "update_one", ({"_id": "sup"}, {"$set": {"position": 4}}), {"upsert": True})
        ]
        await rm.drop("p")
        assert calls(recorder) == [
            ("projection_checkpoints", "delete_many", ({"_id": "p"},), {}),
            ("read_model_batches", "delete_many", ({"projection": "p"},), {}),
            ("read_models", "delete_many", ({"projection": "p"},), {}),
        ]
    finally:
        await rm.close()


async def test_artifact_store_queries(backend: MongoTestBackend, recorder: Recorder) -> None:
    store = await MongoArtifactStore(backend.connect(recorder)).open()
    try:
        assert calls(recorder) == [
            (
                "artifacts.files",
                "create_index",
                ([("filename", 1), ("uploadDate", 1)],),
                {"name": "filename_1_uploadDate_1"},
            ),
            (
                "artifacts.chunks",
                "create_index",
                ([("files_id", 1), ("n", 1)],),
                {"name": "files_id_1_n_1", "unique": True},
            ),
        ]
        sha = await store.put(b"weights")
        assert calls(recorder) == [
            ("artifacts.files", "find_one", ({"_id": sha}, {"_id": 1}), {}),
            ("artifacts.chunks", "insert_many", ([["data", "files_id", "n"]],), {"ordered": False}),
            (
                "artifacts.files",
                "insert_one",
                (["_id", "chunkSize", "filename", "length", "metadata", "uploadDate"],),
                {},
            ),
        ]
        assert await store.get(sha) == b"weights"
        assert calls(recorder) == [
            ("artifacts.files", "find_one", ({"_id": sha},), {}),
            ("artifacts.chunks", "find", ({"files_id": sha}, {"n": 1, "data": 1}), {"sort": [("n", 1)]}),
        ]
        assert await store.exists(sha)
        assert calls(recorder) == [("artifacts.files", "find_one", ({"_id": sha}, {"_id": 1}), {})]
    finally:
        await store.close()
