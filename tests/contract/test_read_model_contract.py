"""The read-model store contract: every adapter must pass these unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from projections.ports import ReadModelStore


async def test_commit_writes_docs_and_checkpoint_together(read_models: ReadModelStore) -> None:
    assert await read_models.get_checkpoint("p") == 0
    ok = await read_models.commit("p", {"a": (3, {"n": 1}), "b": (5, {"n": 2})}, 0, 5)
    assert ok
    assert await read_models.get_checkpoint("p") == 5
    assert await read_models.get("p", "a") == {"n": 1}
    assert await read_models.get("p", "missing") is None
    assert await read_models.get_many("p", ["a", "b", "c"]) == {"a": {"n": 1}, "b": {"n": 2}}
    assert await read_models.count("p") == 2


async def test_a_document_as_json_decodes_to_the_document(read_models: ReadModelStore) -> None:
    doc = {"b": [1, 2.5, None], "a": {"z": "ü", "y": True}, "n": 2**53}
    await read_models.commit("p", {"k": (1, doc)}, 0, 1)
    raw = await read_models.get_json("p", "k")
    assert isinstance(raw, bytes)
    assert orjson.loads(raw) == doc == await read_models.get("p", "k")
    assert raw == orjson.dumps(await read_models.get("p", "k"))  # the bytes a route encoding `get` sent
    assert await read_models.get_json("p", "missing") is None
    assert await read_models.get_json("other", "k") is None
    await read_models.commit("p", {"k": (2, None)}, 1, 2)  # deleted
    assert await read_models.get_json("p", "k") is None


async def test_commit_with_stale_checkpoint_writes_nothing(read_models: ReadModelStore) -> None:
    assert await read_models.commit("p", {"a": (1, {"n": 1})}, 0, 1)
    assert not await read_models.commit("p", {"a": (2, {"n": 99})}, 0, 2)
    assert await read_models.get("p", "a") == {"n": 1}
    assert await read_models.get_checkpoint("p") == 1


async def test_concurrent_commits_from_one_checkpoint_only_one_wins(read_models: ReadModelStore) -> None:
    results = await asyncio.gather(*(read_models.commit("p", {"k": (1, {"w": i})}, 0, 1) for i in range(8)))
    assert sum(results) == 1
    assert await read_models.get_checkpoint("p") == 1


async def test_delete_by_none_doc(read_models: ReadModelStore) -> None:
    await read_models.commit("p", {"a": (1, {"n": 1})}, 0, 1)
    await read_models.commit("p", {"a": (2, None)}, 1, 2)
    assert await read_models.get("p", "a") is None


async def test_list_is_ordered_by_key_and_paged(read_models: ReadModelStore) -> None:
    await read_models.commit("p", {k: (i + 1, {"k": k}) for i, k in enumerate(["c", "a", "b"])}, 0, 3)
    assert [d["k"] for d in await read_models.list_docs("p")] == ["a", "b", "c"]
    assert [d["k"] for d in await read_models.list_docs("p", limit=1, offset=1)] == ["b"]


async def test_list_and_count_filter_on_top_level_fields(read_models: ReadModelStore) -> None:
    docs: dict[str, dict[str, Any]] = {
        "a": {"s": "running", "n": 1, "ok": True},
        "b": {"s": "done", "n": 2, "ok": False},
        "c": {"s": "running"},
    }
    await read_models.commit("p", {k: (i + 1, d) for i, (k, d) in enumerate(docs.items())}, 0, 3)
    await read_models.commit("q", {"x": (4, {"s": "running"})}, 0, 4)
    assert [d.get("n") for d in await read_models.list_docs("p", where={"s": "running"})] == [1, None]
    assert await read_models.count("p", where={"s": "running"}) == 2
    assert await read_models.count("p", where={"s": "running", "n": 1}) == 1
    assert await read_models.list_docs("p", where={"ok": True}) == [docs["a"]]
    assert await read_models.list_docs("p", limit=1, offset=1, where={"s": "running"}) == [docs["c"]]
    assert await read_models.count("p", where={"s": "nothing"}) == 0
    with pytest.raises(ValueError):
        await read_models.count("p", where={"s') OR 1=1 --": "x"})
    for limit, offset, where in ((100, 0, None), (1, 1, {"s": "running"}), (2, 0, {"ok": False}), (5, 9, None)):
        as_json = await read_models.list_json("p", limit, offset, where)
        assert [orjson.loads(raw) for raw in as_json] == await read_models.list_docs("p", limit, offset, where)
        assert as_json == [orjson.dumps(d) for d in await read_models.list_docs("p", limit, offset, where)]
    with pytest.raises(ValueError):
        await read_models.list_json("p", where={"s') OR 1=1 --": "x"})


async def test_changed_after_returns_current_docs_in_position_order(read_models: ReadModelStore) -> None:
    await read_models.commit("p", {"a": (1, {"v": 1}), "b": (2, {"v": 1})}, 0, 2)
    await read_models.commit("p", {"a": (3, {"v": 2})}, 2, 3)
    changed = await read_models.changed_after("p", 1)
    assert [(c.key, c.position, c.doc) for c in changed] == [("b", 2, {"v": 1}), ("a", 3, {"v": 2})]
    only_a = await read_models.changed_after("p", 0, key="a")
    assert [(c.key, c.position) for c in only_a] == [("a", 3)]


async def test_projections_are_isolated_and_drop_resets(read_models: ReadModelStore) -> None:
    await read_models.commit("p", {"a": (1, {"n": 1})}, 0, 1)
    await read_models.commit("q", {"a": (1, {"n": 2})}, 0, 1)
    await read_models.drop("p")
    assert await read_models.dump("p") == {}
    assert await read_models.get_checkpoint("p") == 0
    assert await read_models.dump("q") == {"a": {"n": 2}}


async def test_plain_checkpoints(read_models: ReadModelStore) -> None:
    await read_models.set_checkpoint("supervisor", 7)
    await read_models.set_checkpoint("supervisor", 9)
    assert await read_models.get_checkpoint("supervisor") == 9


async def test_nested_documents_round_trip(read_models: ReadModelStore) -> None:
    doc = {"list": [1, 2.5, "x", None, {"deep": [True]}], "map": {"k": {"v": 1}}}
    await read_models.commit("p", {"a": (1, doc)}, 0, 1)
    assert await read_models.get("p", "a") == doc


async def test_count_follows_every_commit(read_models: ReadModelStore) -> None:
    assert await read_models.count("p") == 0
    for i in range(1, 4):
        await read_models.commit("p", {f"k{i}": (i, {"s": "x"})}, i - 1, i)
        assert await read_models.count("p") == i
        assert await read_models.count("p", where={"s": "x"}) == i
    await read_models.commit("p", {"k1": (4, None)}, 3, 4)
    assert await read_models.count("p") == 2


async def test_pages_and_counts_follow_every_commit_of_any_view(
    read_model_views: tuple[ReadModelStore, ReadModelStore],
) -> None:
    """Repeated reads of an unchanged store may be answered from memory (SQLite keeps them per
    state of the file); a commit by this view or by another replica's must show at once."""
    reader, writer = read_model_views

    async def seen(where: dict[str, Any] | None = None) -> tuple[list[str], list[str], int]:
        docs = [d["k"] for d in await reader.list_docs("p", limit=10, where=where)]
        raw = [orjson.loads(b)["k"] for b in await reader.list_json("p", limit=10, where=where)]
        return docs, raw, await reader.count("p", where=where)

    assert await seen() == ([], [], 0)
    position = 0
    for i, by in enumerate([writer, reader, writer, writer, reader]):
        assert await by.commit("p", {f"k{i}": (position + 1, {"k": f"k{i}", "s": "x"})}, position, position + 1)
        position += 1
        keys = [f"k{j}" for j in range(i + 1)]
        assert await seen() == (keys, keys, i + 1)
        assert await seen() == (keys, keys, i + 1)  # asked again, unchanged
        assert await seen({"s": "x"}) == (keys, keys, i + 1)
    pages = await reader.list_json("p", limit=10)
    pages.clear()  # a caller's list is its own
    assert len(await reader.list_json("p", limit=10)) == 5
    assert await writer.commit("p", {"k0": (position + 1, None), "k1": (position + 1, {"k": "k1", "s": "y"})},
                               position, position + 1)  # fmt: skip
    assert await seen() == (["k1", "k2", "k3", "k4"], ["k1", "k2", "k3", "k4"], 4)
    assert await seen({"s": "x"}) == (["k2", "k3", "k4"], ["k2", "k3", "k4"], 3)
