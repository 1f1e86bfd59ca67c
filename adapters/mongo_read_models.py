"""MongoDB read-model store: documents per (projection, key) plus projection checkpoints.

Checkpoints commit atomically with the read-model writes they cover, without multi-document
transactions, by making the commit *one document update* (write-ahead batch, roll forward):

1. the batch's changes are staged in `read_model_batches` under a fresh batch id (invisible to
   readers; a crash here leaves only garbage, removed at a later start-up);
2. the commit point is one conditional update of the checkpoint document,
   `{_id: projection, position: from, pending: null}` -> `{position: to, pending: batch}`.
   If it does not match (another runner got there first) nothing is applied and False returned;
3. the staged changes are applied to `read_models` (replacements), each guarded by position
   (`position < new`), so applying twice or late (a racing roll-forward) is harmless, then
   `pending` is cleared.
If the process dies between 2 and 3, whoever next reads the checkpoint (`get_checkpoint`,
`commit`, `open`) finishes step 3 first, so a checkpoint is never observed ahead of its writes.
Deletes are kept as tombstones (`doc: null`) so the position guard also covers them; every read
filters them out. Batch size is not limited by the 16 MB document size: changes are staged one
document per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pymongo import ReplaceOne, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from adapters.mongo_client import ConnectionHolder, MongoCollection, MongoConnection, collection
from persistence.ports import FencedOut
from projections.ports import Commit, Doc, DocChange, Where, check_where

READ_MODELS = "read_models"
CHECKPOINTS = "projection_checkpoints"
BATCHES = "read_model_batches"
ORPHAN_AGE = timedelta(hours=1)  # staged batches never committed (crash before the commit point)
_DUPLICATE_KEY = 11000
_LIVE: dict[str, Any] = {"$ne": None}  # tombstones have doc: null


def _query(projection: str, where: Where | None) -> dict[str, Any]:
    query: dict[str, Any] = {"projection": projection, "doc": _LIVE}
    for name, value in check_where(where).items():
        query[f"doc.{name}"] = value
    return query


class MongoReadModelStore(ConnectionHolder):
    def __init__(self, connection: MongoConnection) -> None:
        super().__init__(connection)
        self.docs: MongoCollection = collection(connection.db, READ_MODELS)
        self.checkpoints: MongoCollection = collection(connection.db, CHECKPOINTS)
        self.batches: MongoCollection = collection(connection.db, BATCHES)

    async def open(self) -> MongoReadModelStore:
        await ensure_read_model_indexes(self.docs, self.batches)
        pending = await self.checkpoints.find({"pending": _LIVE}, {"pending": 1}).to_list(None)
        for cp in pending:
            await self._roll_forward(str(cp["_id"]), str(cp["pending"]))
        await self.batches.delete_many({"created_at": {"$lt": datetime.now(UTC) - ORPHAN_AGE}})
        self._hold()  # once open succeeded: close() gives the connection back
        return self

    # --- reads -------------------------------------------------------------------------------

    async def get(self, projection: str, key: str) -> Doc | None:
        found = await self.docs.find_one({"projection": projection, "key": key, "doc": _LIVE}, {"doc": 1})
        return dict(found["doc"]) if found else None

    async def get_json(self, projection: str, key: str) -> bytes | None:
        doc = await self.get(projection, key)
        return None if doc is None else orjson.dumps(doc)

    async def get_many(self, projection: str, keys: list[str]) -> dict[str, Doc]:
        if not keys:
            return {}
        found = await self.docs.find(
            {"projection": projection, "key": {"$in": keys}, "doc": _LIVE}, {"key": 1, "doc": 1}
        ).to_list(None)
        return {d["key"]: d["doc"] for d in found}

    async def list_docs(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[Doc]:
        found = await self.docs.find(
            _query(projection, where), {"doc": 1}, sort=[("key", 1)], skip=offset, limit=limit
        ).to_list(None)
        return [d["doc"] for d in found]

    async def list_json(
        self, projection: str, limit: int = 100, offset: int = 0, where: Where | None = None
    ) -> list[bytes]:
        return [orjson.dumps(doc) for doc in await self.list_docs(projection, limit, offset, where)]

    async def count(self, projection: str, where: Where | None = None) -> int:
        return int(await self.docs.count_documents(_query(projection, where)))

    async def changed_after(self, projection: str, position: int, key: str | None = None) -> list[DocChange]:
        query: dict[str, Any] = {"projection": projection, "position": {"$gt": position}, "doc": _LIVE}
        if key is not None:
            query["key"] = key
        found = await self.docs.find(
            query, {"key": 1, "position": 1, "doc": 1}, sort=[("position", 1), ("key", 1)]
        ).to_list(None)
        return [DocChange(projection, d["key"], int(d["position"]), d["doc"]) for d in found]

    async def dump(self, projection: str) -> dict[str, Doc]:
        found = await self.docs.find(
            {"projection": projection, "doc": _LIVE}, {"key": 1, "doc": 1}, sort=[("key", 1)]
        ).to_list(None)
        return {d["key"]: d["doc"] for d in found}

    async def wait_commit_elsewhere(self, timeout: float) -> None:
        """A timed wait: the replicas are separate machines here, and a follower reads the
        checkpoints again after it (a change stream on them could wake it sooner)."""
        await asyncio.sleep(timeout)

    # --- checkpoints and commits -------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int:
        cp = await self._checkpoint(name)
        return int(cp["position"]) if cp else 0

    async def _checkpoint(self, name: str) -> dict[str, Any] | None:
        """The checkpoint document, after finishing a batch a crashed committer left pending."""
        cp: dict[str, Any] | None = await self.checkpoints.find_one({"_id": name})
        if cp is not None and cp.get("pending") is not None:
            await self._roll_forward(name, str(cp["pending"]))
        return cp

    async def set_checkpoint(self, name: str, position: int, fence: int | None = None) -> None:
        for _attempt in range(2):  # two first-time upserts may race on _id: the loser retries
            with contextlib.suppress(DuplicateKeyError):
                result = await self.checkpoints.update_one(
                    {"_id": name, **_fence_filter(fence)}, _fence_update({"position": position}, fence), upsert=True
                )
                if result.matched_count or result.upserted_id is not None:
                    return
        await self._refuse_if_fenced(name, fence)

    async def _refuse_if_fenced(self, name: str, fence: int | None) -> None:
        if fence is None:
            return
        cp = await self.checkpoints.find_one({"_id": name}, {"fence": 1})
        if cp is not None and int(cp.get("fence", 0)) > fence:
            raise FencedOut(f"checkpoint {name} was written under lease token {cp['fence']}; this writer holds {fence}")

    async def commit(
        self,
        projection: str,
        changes: Mapping[str, tuple[int, Doc | None]],
        from_checkpoint: int,
        to_checkpoint: int,
        fence: int | None = None,
    ) -> bool:
        cp = await self._checkpoint(projection)
        if fence is not None and cp is not None and int(cp.get("fence", 0)) > fence:
            raise FencedOut(f"checkpoint {projection} was written under lease token {cp['fence']}; this one is {fence}")
        if (int(cp["position"]) if cp else 0) != from_checkpoint:
            return False  # cheap early answer; the conditional update below is what decides
        batch = uuid.uuid4().hex
        now = datetime.now(UTC)
        staged = [
            {
                "_id": f"{batch}:{n}",
                "batch": batch,
                "created_at": now,
                "projection": projection,
                "key": key,
                "position": position,
                "doc": doc,
            }
            for n, (key, (position, doc)) in enumerate(changes.items())
        ]
        if staged:
            await self.batches.insert_many(staged, ordered=False)
        try:  # the commit point: one document update
            won = await self.checkpoints.find_one_and_update(
                {"_id": projection, "position": from_checkpoint, "pending": None, **_fence_filter(fence)},
                _fence_update({"position": to_checkpoint, "pending": batch if staged else None}, fence),
                upsert=from_checkpoint == 0,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # upsert lost to a checkpoint that exists at another position
            won = None
        if won is None:
            if staged:
                await self.batches.delete_many({"batch": batch})
            await self._refuse_if_fenced(projection, fence)
            return False
        if staged:
            await self._apply(projection, batch, staged)
        return True

    async def commit_many(self, commits: Sequence[Commit]) -> list[bool]:
        """One `commit` after another: each is its own commit point (no multi-document transactions)."""
        return [
            await self.commit(c.projection, c.changes, c.from_checkpoint, c.to_checkpoint, c.fence) for c in commits
        ]

    async def _roll_forward(self, projection: str, batch: str) -> None:
        staged = await self.batches.find({"batch": batch}).to_list(None)
        await self._apply(projection, batch, staged)

    async def _apply(self, projection: str, batch: str, staged: list[dict[str, Any]]) -> None:
        # Replacement-style writes: read-model documents may hold field names with dots or a
        # leading $ (metric names...), which MongoDB >= 5.0 stores in inserts and replacements
        # but refuses in $set updates of existing documents.
        writes = [
            ReplaceOne(
                {"projection": projection, "key": s["key"], "position": {"$lt": s["position"]}},
                {"projection": projection, "key": s["key"], "position": s["position"], "doc": s["doc"]},
                upsert=True,
            )
            for s in staged
        ]
        if writes:
            try:
                await self.docs.bulk_write(writes, ordered=False)
            except BulkWriteError as exc:  # duplicate key = a newer (or this) version is stored
                if any(err.get("code") != _DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                    raise
        await self.checkpoints.update_one({"_id": projection, "pending": batch}, {"$set": {"pending": None}})
        await self.batches.delete_many({"batch": batch})

    async def drop(self, projection: str) -> None:
        await self.checkpoints.delete_many({"_id": projection})  # first: racing commits now fail
        await self.batches.delete_many({"projection": projection})
        await self.docs.delete_many({"projection": projection})


def _fence_filter(fence: int | None) -> dict[str, Any]:
    """Match a checkpoint no higher lease token has written (a missing fence is token 0)."""
    return {} if fence is None else {"$or": [{"fence": {"$exists": False}}, {"fence": {"$lte": fence}}]}


def _fence_update(fields: dict[str, Any], fence: int | None) -> dict[str, Any]:
    return {"$set": fields} if fence is None else {"$set": fields, "$max": {"fence": fence}}


async def ensure_read_model_indexes(docs: MongoCollection, batches: MongoCollection) -> None:
    await docs.create_index([("projection", 1), ("key", 1)], name="projection_key_unique", unique=True)
    await docs.create_index([("projection", 1), ("position", 1)], name="projection_position")
    await batches.create_index([("batch", 1)], name="batch")
    await batches.create_index([("projection", 1)], name="projection")
