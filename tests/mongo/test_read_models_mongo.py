"""MongoDB read-model store beyond the contract: the write-ahead batch around a crash, the
position guard, tombstones."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.mongo_read_models import BATCHES, CHECKPOINTS, READ_MODELS, MongoReadModelStore
from tests.mongo.standin import MongoTestBackend, Recorder


class Crash(Exception):
    """The process died here."""


async def crash(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    raise Crash


async def open_rm(backend: MongoTestBackend, recorder: Recorder | None = None) -> MongoReadModelStore:
    return await MongoReadModelStore(backend.connect(recorder)).open()


async def test_crash_after_the_commit_point_is_rolled_forward_on_next_read(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    dying = await open_rm(backend, recorder)
    await dying.commit("p", {"a": (1, {"v": 1})}, 0, 1)
    recorder.after[(CHECKPOINTS, "find_one_and_update")] = crash  # dies right after the commit point
    with pytest.raises(Crash):
        await dying.commit("p", {"a": (2, {"v": 2}), "b": (3, {"v": 1})}, 1, 3)
    # the batch is committed (checkpoint moved, pending set) but not applied yet
    cp = await backend.database()[CHECKPOINTS].find_one({"_id": "p"})
    assert cp is not None and cp["position"] == 3 and cp["pending"] is not None
    assert await dying.get("p", "b") is None

    survivor = await open_rm(backend)  # open() finishes pending batches
    try:
        assert await survivor.dump("p") == {"a": {"v": 2}, "b": {"v": 1}}
        assert await survivor.get_checkpoint("p") == 3
        cp = await backend.database()[CHECKPOINTS].find_one({"_id": "p"})
        assert cp is not None and cp["pending"] is None
        assert await backend.database()[BATCHES].count_documents({}) == 0
    finally:
        await survivor.close()
        await dying.close()


async def test_get_checkpoint_rolls_a_pending_batch_forward(backend: MongoTestBackend, recorder: Recorder) -> None:
    running = await open_rm(backend)  # opened before the crash: open() cannot have helped
    dying = await open_rm(backend, recorder)
    try:
        recorder.after[(CHECKPOINTS, "find_one_and_update")] = crash
        with pytest.raises(Crash):
            await dying.commit("p", {"a": (4, {"v": 4})}, 0, 4)
        assert await running.get("p", "a") is None
        assert await running.get_checkpoint("p") == 4  # never observed ahead of its writes
        assert await running.get("p", "a") == {"v": 4}
        assert await running.commit("p", {"a": (5, {"v": 5})}, 4, 5)
        assert await running.get("p", "a") == {"v": 5}
    finally:
        await running.close()
        await dying.close()


async def test_crash_before_the_commit_point_writes_nothing_visible(
    backend: MongoTestBackend, recorder: Recorder
) -> None:
    dying = await open_rm(backend, recorder)
    recorder.before[(CHECKPOINTS, "find_one_and_update")] = crash
    with pytest.raises(Crash):
        await dying.commit("p", {"a": (1, {"v": 1})}, 0, 1)
    await dying.close()
    other = await open_rm(backend)
    try:
        assert await other.get_checkpoint("p") == 0
        assert await other.dump("p") == {}
        assert await other.commit("p", {"a": (1, {"v": 9})}, 0, 1)  # the staged orphan is inert
        assert await other.get("p", "a") == {"v": 9}
    finally:
        await other.close()


async def test_a_late_apply_never_overwrites_a_newer_document(backend: MongoTestBackend) -> None:
    rm = await open_rm(backend)
    try:
        assert await rm.commit("p", {"a": (5, {"v": "new"})}, 0, 5)
        # a racing roll-forward of an older batch, applied late
        await rm._apply("p", "old", [{"key": "a", "position": 3, "doc": {"v": "old"}}])
        await rm._apply("p", "old", [{"key": "a", "position": 5, "doc": {"v": "same position"}}])
        assert await rm.get("p", "a") == {"v": "new"}
    finally:
        await rm.close()


async def test_deletes_are_tombstones_hidden_from_every_read(backend: MongoTestBackend) -> None:
    rm = await open_rm(backend)
    try:
        await rm.commit("p", {"a": (1, {"v": 1}), "b": (2, {"v": 1})}, 0, 2)
        await rm.commit("p", {"a": (3, None)}, 2, 3)
        raw = await backend.database()[READ_MODELS].find_one({"projection": "p", "key": "a"})
        assert raw is not None and raw["doc"] is None and raw["position"] == 3
        assert await rm.get("p", "a") is None
        assert await rm.get_many("p", ["a", "b"]) == {"b": {"v": 1}}
        assert [d["v"] for d in await rm.list_docs("p")] == [1]
        assert await rm.count("p") == 1
        assert [c.key for c in await rm.changed_after("p", 0)] == ["b"]
        assert await rm.dump("p") == {"b": {"v": 1}}
        await rm._apply("p", "old", [{"key": "a", "position": 1, "doc": {"v": 1}}])  # no resurrection
        assert await rm.get("p", "a") is None
    finally:
        await rm.close()


async def test_field_names_with_dots_and_dollars_round_trip(backend: MongoTestBackend) -> None:
    """Metric names are user data; MongoDB >= 5.0 stores such names in inserts and replacements."""
    rm = await open_rm(backend)
    try:
        doc = {"metrics": {"val.loss": 0.5, "$weird": {"a.b": [1, {"$c": 2}]}}}
        assert await rm.commit("p", {"k": (1, doc)}, 0, 1)
        changed = {"metrics": {"val.loss": 0.25, "$weird": None}}
        assert await rm.commit("p", {"k": (2, changed)}, 1, 2)  # an update of an existing document
        assert await rm.get("p", "k") == changed
    finally:
        await rm.close()
