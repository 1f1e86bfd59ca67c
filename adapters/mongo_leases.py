"""MongoDB leases: one document per background service (`leases`, `_id` = its name), taken,
renewed and handed over by conditional single-document updates - no transactions. The token
grows by one at every takeover ($inc in the same update that changes the owner). Time is the
caller's wall clock: keep replica clocks in sync (NTP); the TTL bounds how long a dead owner
blocks the service."""

from __future__ import annotations

import time
from collections.abc import Callable

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from adapters.mongo_client import ConnectionHolder, MongoCollection, MongoConnection, collection
from persistence.ports import Lease

LEASES = "leases"


class MongoLeaseStore(ConnectionHolder):
    def __init__(self, connection: MongoConnection, clock: Callable[[], float] = time.time) -> None:
        super().__init__(connection)
        self.leases: MongoCollection = collection(connection.db, LEASES)
        self.clock = clock

    async def open(self) -> MongoLeaseStore:
        self._hold()  # once open succeeded: close() gives the connection back
        return self

    async def acquire(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        now = self.clock()
        until = now + ttl_s
        mine = await self.leases.find_one_and_update(
            {"_id": name, "owner": owner, "expires_at": {"$gt": now}},
            {"$set": {"expires_at": until}},
            return_document=ReturnDocument.AFTER,
        )
        if mine is not None:
            return Lease(name, owner, int(mine["token"]), until)
        taken = await self.leases.find_one_and_update(
            {"_id": name, "expires_at": {"$lte": now}},
            {"$set": {"owner": owner, "expires_at": until}, "$inc": {"token": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return Lease(name, owner, int(taken["token"]), until)
        try:
            await self.leases.insert_one({"_id": name, "owner": owner, "token": 1, "expires_at": until})
        except DuplicateKeyError:
            return None  # someone holds it (or just took it)
        return Lease(name, owner, 1, until)

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        now = self.clock()
        result = await self.leases.update_one(
            {"_id": lease.name, "owner": lease.owner, "token": lease.token},
            {"$set": {"expires_at": now + ttl_s}},
        )
        return Lease(lease.name, lease.owner, lease.token, now + ttl_s) if result.matched_count else None

    async def release(self, lease: Lease) -> None:
        await self.leases.update_one(
            {"_id": lease.name, "owner": lease.owner, "token": lease.token}, {"$set": {"expires_at": 0.0}}
        )

    async def holder(self, name: str) -> Lease | None:
        doc = await self.leases.find_one({"_id": name})
        if doc is None or doc["expires_at"] <= self.clock():
            return None
        return Lease(name, doc["owner"], int(doc["token"]), float(doc["expires_at"]))
