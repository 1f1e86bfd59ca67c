"""MongoDB seal store: the copy of every event's seal (collection `audit_seals`, `_id` = the
event's position), so every replica on one MongoDB checks against the same copy. Inserts only:
re-copying a seal is a no-op, an existing seal is never replaced (the unique `_id` refuses it)."""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError

from adapters.mongo_client import ConnectionHolder, MongoCollection, MongoConnection, collection
from persistence.seals import SealRecord

SEALS = "audit_seals"
_DUPLICATE_KEY = 11000


def _seal(doc: dict[str, Any]) -> SealRecord:
    return SealRecord(int(doc["_id"]), doc["stream_id"], int(doc["version"]), doc["event_id"], doc["seal"])


class MongoSealStore(ConnectionHolder):
    def __init__(self, connection: MongoConnection) -> None:
        super().__init__(connection)
        self.seals: MongoCollection = collection(connection.db, SEALS)

    async def open(self) -> MongoSealStore:
        await self.seals.create_index([("stream_id", 1), ("version", 1)], name="seals_by_stream")
        self._hold()  # once open succeeded: close() gives the connection back
        return self

    async def put(self, seals: list[SealRecord]) -> None:
        if not seals:
            return
        docs = [
            {"_id": s.position, "stream_id": s.stream_id, "version": s.version, "event_id": s.event_id, "seal": s.seal}
            for s in seals
        ]
        try:
            await self.seals.insert_many(docs, ordered=False)
        except BulkWriteError as exc:  # duplicates: those seals were copied before
            if any(err.get("code") != _DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                raise

    async def range(self, after_position: int, up_to: int | None = None) -> list[SealRecord]:
        bounds: dict[str, int] = {"$gt": after_position}
        if up_to is not None:
            bounds["$lte"] = up_to
        return [_seal(d) for d in await self.seals.find({"_id": bounds}, sort=[("_id", 1)]).to_list(None)]

    async def for_stream(self, stream_id: str) -> list[SealRecord]:
        docs = await self.seals.find({"stream_id": stream_id}, sort=[("version", 1)]).to_list(None)
        return [_seal(d) for d in docs]

    async def head(self) -> int:
        newest = await self.seals.find({}, sort=[("_id", -1)], limit=1).to_list(None)
        return int(newest[0]["_id"]) if newest else 0
