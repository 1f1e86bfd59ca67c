"""MongoDB connection for the Mongo adapters: one `pymongo.AsyncMongoClient`, shared by leases.

`FLP_STORE_URL=mongodb://...` (or `mongodb+srv://`) selects MongoDB. The database is the one in
the URL path, else `FLP_MONGODB_DATABASE`, else `flp`. Write concern (`FLP_MONGODB_WRITE_CONCERN`,
default `majority`; a number means that many members) and read concern
(`FLP_MONGODB_READ_CONCERN`, default `majority`) are set on the database handle, so every
operation of every adapter uses them.

The adapters talk to the database only through the small protocols below (the exact subset of
`AsyncDatabase` / `AsyncCollection` they call). The real driver satisfies them, and so does the
test stand-in (`tests/mongo/standin.py`), which keeps mongomock, a dev-only dependency, out of
production code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.read_concern import ReadConcern
from pymongo.uri_parser import parse_uri
from pymongo.write_concern import WriteConcern

DEFAULT_DATABASE = "flp"


class MongoCursor(Protocol):
    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]: ...


class MongoCollection(Protocol):
    """The collection operations the adapters use (all single-document atomic, no sessions)."""

    @property
    def name(self) -> str: ...

    async def insert_one(self, *args: Any, **kwargs: Any) -> Any: ...

    async def insert_many(self, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one(self, *args: Any, **kwargs: Any) -> Any: ...

    def find(self, *args: Any, **kwargs: Any) -> Any: ...

    async def find_one_and_update(self, *args: Any, **kwargs: Any) -> Any: ...

    async def update_one(self, *args: Any, **kwargs: Any) -> Any: ...

    async def replace_one(self, *args: Any, **kwargs: Any) -> Any: ...

    async def delete_many(self, *args: Any, **kwargs: Any) -> Any: ...

    async def bulk_write(self, *args: Any, **kwargs: Any) -> Any: ...

    async def count_documents(self, *args: Any, **kwargs: Any) -> int: ...

    async def create_index(self, *args: Any, **kwargs: Any) -> Any: ...

    async def watch(self, *args: Any, **kwargs: Any) -> Any: ...


class MongoDatabase(Protocol):
    @property
    def name(self) -> str: ...

    def __getitem__(self, name: str) -> Any: ...

    async def command(self, *args: Any, **kwargs: Any) -> Any: ...


class Closeable(Protocol):
    async def close(self) -> None: ...


def collection(db: MongoDatabase, name: str) -> MongoCollection:
    coll: MongoCollection = db[name]
    return coll


def parse_write_concern(value: str) -> WriteConcern:
    """`majority` (default), a member count such as `1`, or a custom tag-set name."""
    w: int | str = int(value) if value.isdigit() else value
    return WriteConcern(w=w)


def database_name(url: str, override: str | None = None) -> str:
    """The database in the URL path wins over FLP_MONGODB_DATABASE, which wins over `flp`."""
    from_url = parse_uri(url, validate=False, connect_timeout=None)["database"]
    return from_url or override or DEFAULT_DATABASE


def is_mongo_url(url: str) -> bool:
    return url.startswith(("mongodb://", "mongodb+srv://"))


class MongoConnection:
    """A client plus the configured database handle, closed when the last lease is released.

    Each adapter takes a lease in `open()` and releases it in `close()`, so the event store,
    read-model store and artifact store of one process share one connection pool.
    """

    def __init__(self, client: Closeable | None, db: MongoDatabase) -> None:
        self.client = client
        self.db = db
        self._leases = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        database: str | None = None,
        write_concern: str = "majority",
        read_concern: str = "majority",
        **client_options: Any,
    ) -> MongoConnection:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, appname="flp", tz_aware=True, **client_options)
        db = client.get_database(
            database_name(url, database),
            write_concern=parse_write_concern(write_concern),
            read_concern=ReadConcern(read_concern),
        )
        return cls(client, db)

    @classmethod
    def from_settings(cls, settings: Any) -> MongoConnection:
        """From `flp.settings.Settings` (typed loosely to keep adapters free of the flp package)."""
        return cls.from_url(
            settings.resolved_store_url(),
            settings.mongodb_database,
            settings.mongodb_write_concern,
            settings.mongodb_read_concern,
        )

    def lease(self) -> MongoConnection:
        self._leases += 1
        return self

    async def release(self) -> None:
        self._leases -= 1
        if self._leases <= 0 and self.client is not None:
            client, self.client = self.client, None
            await client.close()


class ConnectionHolder:
    """A store on a shared `MongoConnection`: it takes a lease on the connection once its
    `open()` succeeded (`_hold()`) and gives it back on `close()`; the last one closes the client."""

    def __init__(self, connection: MongoConnection) -> None:
        self._conn = connection
        self._opened = False

    def _hold(self) -> None:
        self._conn.lease()
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._conn.release()


async def topology(db: MongoDatabase) -> Mapping[str, Any]:
    """The server's `hello` reply: `setName` = replica set, `msg == "isdbgrid"` = mongos."""
    reply: Mapping[str, Any] = await db.command("hello")
    return reply


def supports_change_streams(hello: Mapping[str, Any]) -> bool:
    return "setName" in hello or hello.get("msg") == "isdbgrid"


def url_with_database(url: str, name: str) -> str:
    """The same connection URL with another database in its path (options kept)."""
    scheme, rest = url.split("://", 1)
    hosts, _, tail = rest.partition("/")
    _, question, options = tail.partition("?")
    return f"{scheme}://{hosts}/{name}{question}{options}"


async def drop_database(url: str) -> None:
    """Drop the database a URL names (benchmarks and tests clean up after themselves)."""
    name = parse_uri(url, validate=False, connect_timeout=None)["database"]
    if not name:
        raise ValueError(f"{url!r} names no database")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, appname="flp")
    try:
        await client.drop_database(name)
    finally:
        await client.close()
