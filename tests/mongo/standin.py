"""MongoDB for tests: an in-process stand-in by default, a real server when one is configured.

* `StandIn*`: mongomock (MongoDB's query, update, upsert and unique-index semantics, in memory)
  behind the subset of `pymongo.AsyncMongoClient` / `AsyncDatabase` / `AsyncCollection` the
  adapters use (`adapters/mongo_client.py` lists it). Each operation runs atomically between two
  event-loop yields, so concurrent coroutines interleave at operation boundaries the way
  concurrent clients do against a server (single-document atomicity, nothing more). It reports a
  standalone server, so change streams are unavailable and the adapters use their bounded
  fallback wait. It lives under tests/ because mongomock is a dev-only dependency.
* `Recording*`: a proxy around either backend that records every operation (collection, method,
  arguments) and can run hooks before/after one, to pause or fail it (a crashing writer, a lost
  reply). It works the same on the stand-in and on a real server.
* `MongoTestBackend`: `FLP_TEST_MONGODB_URL` set -> a fresh database on that server per test
  (dropped afterwards); unset -> the stand-in. `connect()` twice = two processes' connections.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import bson
import mongomock
from mongomock import filtering
from pymongo import AsyncMongoClient, ReplaceOne, UpdateOne
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, OperationFailure
from pymongo.read_concern import ReadConcern

from adapters.mongo_client import MongoConnection, MongoDatabase, parse_write_concern

ENV_URL = "FLP_TEST_MONGODB_URL"


filter_applies = cast(Callable[[dict[str, Any], dict[str, Any]], bool], filtering.filter_applies)


MAX_BSON_SIZE = 16 * 1024 * 1024  # MongoDB's document size limit (the driver checks it client-side)


def _check_size(document: dict[str, Any]) -> None:
    size = len(bson.encode(document))
    if size > MAX_BSON_SIZE:
        raise DocumentTooLarge(f"BSON document too large ({size} bytes) - the limit is {MAX_BSON_SIZE} bytes")


def _index_values(document: Any, path: str) -> list[Any]:
    """The values an index on `path` holds for a document, expanding arrays (multikey)."""
    head, _, rest = path.partition(".")
    value = document.get(head) if isinstance(document, dict) else None
    items = value if isinstance(value, list) else [value]
    if not rest:
        return items if items else [None]
    out = [v for item in items for v in _index_values(item, rest)]
    return out or [None]


class StandInCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self._docs = docs

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return self._docs if length is None else self._docs[:length]


class StandInCollection:
    def __init__(self, coll: Any) -> None:
        self._coll = coll

    @property
    def name(self) -> str:
        return str(self._coll.name)

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)  # let other coroutines in before ...
        result = getattr(self._coll, method)(*args, **kwargs)  # ... one atomic operation ...
        await asyncio.sleep(0)  # ... and after it
        return result

    async def insert_one(self, document: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0)
        _check_size(document)
        self._check_multikey_unique(document)
        result = self._coll.insert_one(document, *args, **kwargs)
        await asyncio.sleep(0)
        return result

    def _check_multikey_unique(self, document: dict[str, Any]) -> None:
        """mongomock ignores unique indexes over array elements (multikey), the server enforces
        them: an index entry per element, and no two documents may share an entry."""
        for name, spec in self._coll.index_information().items():
            if not spec.get("unique"):
                continue
            partial = spec.get("partialFilterExpression")
            if partial is not None and not filter_applies(partial, document):
                continue
            paths = [path for path, _ in spec["key"]]
            per_path = [_index_values(document, path) for path in paths]
            if not any(
                len(values) > 1 or isinstance(document.get(path.split(".")[0]), list)
                for path, values in zip(paths, per_path, strict=True)
            ):
                continue  # not multikey: mongomock checks it itself
            for combo in itertools.product(*per_path):
                query: dict[str, Any] = {**(partial or {}), **dict(zip(paths, combo, strict=True))}
                query["_id"] = {"$ne": document.get("_id")}
                if self._coll.find_one(query) is not None:
                    raise DuplicateKeyError(f"E11000 duplicate key error index: {name} dup key: {combo}", 11000)

    async def insert_many(self, documents: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        for document in documents:
            _check_size(document)
        return await self._run("insert_many", documents, *args, **kwargs)

    async def find_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run("find_one", *args, **kwargs)

    def find(self, *args: Any, **kwargs: Any) -> StandInCursor:
        return StandInCursor(list(self._coll.find(*args, **kwargs)))

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run("find_one_and_update", *args, **kwargs)

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run("update_one", *args, **kwargs)

    async def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run("replace_one", *args, **kwargs)

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return await self._run("delete_many", *args, **kwargs)

    async def bulk_write(self, requests: list[Any], ordered: bool = True, **_kwargs: Any) -> Any:
        """UpdateOne/ReplaceOne requests one by one (mongomock's bulk_write predates pymongo 4.20's), each
        atomic on its own, as on a server; duplicate keys are reported like the server does."""
        errors: list[dict[str, Any]] = []
        for index, request in enumerate(requests):
            if isinstance(request, UpdateOne):
                method = "update_one"
            elif isinstance(request, ReplaceOne):
                method = "replace_one"
            else:
                raise NotImplementedError(f"the stand-in bulk_write runs UpdateOne/ReplaceOne, not {request!r}")
            try:
                await self._run(method, request._filter, request._doc, upsert=bool(request._upsert))
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": exc.code, "errmsg": str(exc)})
                if ordered:
                    break
        if errors:
            raise BulkWriteError({"writeErrors": errors, "nInserted": 0, "nUpserted": 0})
        return None

    async def count_documents(self, *args: Any, **kwargs: Any) -> int:
        return int(await self._run("count_documents", *args, **kwargs))

    async def create_index(self, keys: list[tuple[str, int]], **kwargs: Any) -> Any:
        """As on the server: an index that exists with the same keys and options is a no-op (mongomock
        would rebuild it, and fail on multikey unique indexes it cannot evaluate); the same name with
        other keys or options is an error."""
        name = kwargs.get("name") or "_".join(f"{k}_{d}" for k, d in keys)
        existing = self._coll.index_information().get(name)
        if existing is not None:
            wanted = {k: v for k, v in kwargs.items() if k != "name"}
            have = {k: v for k, v in existing.items() if k not in ("key", "v")}
            if existing["key"] != list(keys) or wanted != have:
                raise OperationFailure(f"index {name} exists with different options", code=86)
            await asyncio.sleep(0)
            return name
        return await self._run("create_index", keys, **kwargs)

    async def index_information(self) -> dict[str, Any]:
        return dict(await self._run("index_information"))

    async def watch(self, *args: Any, **kwargs: Any) -> Any:
        raise OperationFailure("The $changeStream stage is only supported on replica sets", code=40573)


class StandInDatabase:
    def __init__(self, db: Any) -> None:
        self._db = db

    @property
    def name(self) -> str:
        return str(self._db.name)

    def __getitem__(self, name: str) -> StandInCollection:
        return StandInCollection(self._db[name])

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        if args and args[0] == "hello":
            return {"isWritablePrimary": True, "ok": 1.0}  # a standalone server
        raise OperationFailure(f"the stand-in does not run {args!r}")


class StandInClient:
    """A client on a shared in-memory server (two clients on one server = two processes)."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def get_database(self, name: str, **_options: Any) -> StandInDatabase:
        return StandInDatabase(self._server[name])

    async def drop_database(self, name: str) -> None:
        self._server.drop_database(name)

    async def close(self) -> None:
        return None


# --- recording proxy ----------------------------------------------------------------------------

Hook = Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Call:
    collection: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    before: dict[tuple[str, str], Hook] = field(default_factory=dict)
    after: dict[tuple[str, str], Hook] = field(default_factory=dict)

    def record(self, collection: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A deep copy: the driver (and mongomock) may add `_id` to documents and projections."""
        self.calls.append(Call(collection, method, copy.deepcopy(args), copy.deepcopy(kwargs)))

    def of(self, collection: str, method: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.collection == collection and method in (None, c.method)]


class RecordingCollection:
    def __init__(self, inner: Any, name: str, recorder: Recorder) -> None:
        self._inner = inner
        self._name = name
        self._rec = recorder

    @property
    def name(self) -> str:
        return self._name

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._inner, method)
        if method == "find":

            def find(*args: Any, **kwargs: Any) -> Any:
                self._rec.record(self._name, method, args, kwargs)
                return target(*args, **kwargs)

            return find

        async def call(*args: Any, **kwargs: Any) -> Any:
            self._rec.record(self._name, method, args, kwargs)
            hook = self._rec.before.get((self._name, method))
            if hook is not None:
                await hook(args, kwargs)
            result = await target(*args, **kwargs)
            hook = self._rec.after.get((self._name, method))
            if hook is not None:
                await hook(args, kwargs)
            return result

        return call


class RecordingDatabase:
    def __init__(self, inner: MongoDatabase, recorder: Recorder) -> None:
        self._inner = inner
        self.recorder = recorder

    @property
    def name(self) -> str:
        return self._inner.name

    def __getitem__(self, name: str) -> RecordingCollection:
        return RecordingCollection(self._inner[name], name, self.recorder)

    async def command(self, *args: Any, **kwargs: Any) -> Any:
        self.recorder.calls.append(Call("$cmd", "command", args, kwargs))
        return await self._inner.command(*args, **kwargs)


# --- backend selection --------------------------------------------------------------------------


class MongoTestBackend:
    """One test database, on the stand-in or on the server at FLP_TEST_MONGODB_URL."""

    def __init__(self) -> None:
        self.url = os.environ.get(ENV_URL) or None
        self.db_name = f"flp_test_{uuid.uuid4().hex[:12]}"
        self._server: Any = None if self.url else mongomock.MongoClient()
        self._real_clients: list[AsyncMongoClient[dict[str, Any]]] = []

    @property
    def real(self) -> bool:
        return self.url is not None

    def database(self) -> MongoDatabase:
        """A handle on the test database through a new client (stand-in: same server)."""
        if self.url is None:
            assert self._server is not None
            return StandInClient(self._server).get_database(self.db_name)
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(self.url, appname="flp-tests", tz_aware=True)
        self._real_clients.append(client)
        return client.get_database(
            self.db_name, write_concern=parse_write_concern("majority"), read_concern=ReadConcern("majority")
        )

    def connect(self, recorder: Recorder | None = None) -> MongoConnection:
        db = self.database()
        return MongoConnection(None, db if recorder is None else RecordingDatabase(db, recorder))

    async def drop(self) -> None:
        if self.url is None:
            assert self._server is not None
            self._server.drop_database(self.db_name)
            return
        clients, self._real_clients = self._real_clients, []
        try:
            if clients:
                await clients[0].drop_database(self.db_name)
        finally:
            for client in clients:
                await client.close()
