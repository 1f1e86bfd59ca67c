"""MongoDB user store: people (password hashes, roles) and service API keys, so that every
replica on one MongoDB sees the same users. Collections `users` and `api_keys`, one document
each, keyed by name / client id (`_id`): single-document writes only."""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from adapters.mongo_client import ConnectionHolder, MongoCollection, MongoConnection, collection
from domain.roles import parse_roles
from persistence.ports import AlreadyExists, ApiKeyRecord, UserRecord

USERS = "users"
API_KEYS = "api_keys"


def _user(doc: dict[str, Any]) -> UserRecord:
    return UserRecord(doc["_id"], doc["password_hash"], parse_roles(doc["roles"]), doc["created_at"], doc["disabled"])


def _key(doc: dict[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        doc["_id"], doc["secret_sha256"], doc["name"], parse_roles(doc["roles"]), doc["created_at"], doc["revoked"]
    )


class MongoUserStore(ConnectionHolder):
    def __init__(self, connection: MongoConnection) -> None:
        super().__init__(connection)
        self.users: MongoCollection = collection(connection.db, USERS)
        self.keys: MongoCollection = collection(connection.db, API_KEYS)

    async def open(self) -> MongoUserStore:
        self._hold()  # once open succeeded: close() gives the connection back
        return self

    async def get_user(self, name: str) -> UserRecord | None:
        doc = await self.users.find_one({"_id": name})
        return _user(doc) if doc else None

    async def add_user(self, user: UserRecord) -> None:
        try:
            await self.users.insert_one(
                {
                    "_id": user.name,
                    "password_hash": user.password_hash,
                    "roles": sorted(str(r) for r in user.roles),
                    "created_at": user.created_at,
                    "disabled": user.disabled,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(f"user {user.name} exists") from None

    async def list_users(self) -> list[UserRecord]:
        return [_user(d) for d in await self.users.find({}, sort=[("_id", 1)]).to_list(None)]

    async def update_user(self, user: UserRecord) -> bool:
        result = await self.users.update_one(
            {"_id": user.name},
            {
                "$set": {
                    "password_hash": user.password_hash,
                    "roles": sorted(str(r) for r in user.roles),
                    "disabled": user.disabled,
                }
            },
        )
        return bool(result.matched_count)

    async def delete_user(self, name: str) -> bool:
        result = await self.users.delete_many({"_id": name})
        return bool(result.deleted_count)

    async def add_api_key(self, key: ApiKeyRecord) -> None:
        try:
            await self.keys.insert_one(
                {
                    "_id": key.client_id,
                    "secret_sha256": key.secret_sha256,
                    "name": key.name,
                    "roles": sorted(str(r) for r in key.roles),
                    "created_at": key.created_at,
                    "revoked": key.revoked,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(f"API key {key.client_id} exists") from None

    async def get_api_key(self, client_id: str) -> ApiKeyRecord | None:
        doc = await self.keys.find_one({"_id": client_id})
        return _key(doc) if doc else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        return [_key(d) for d in await self.keys.find({}, sort=[("_id", 1)]).to_list(None)]

    async def revoke_api_key(self, client_id: str) -> bool:
        result = await self.keys.update_one({"_id": client_id, "revoked": False}, {"$set": {"revoked": True}})
        return bool(result.modified_count)
