"""Store adapters under contract test. Every adapter joins STORE_KINDS and passes the same tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from adapters.mongo_audit_seals import MongoSealStore
from adapters.mongo_event_store import MongoEventStore
from adapters.mongo_leases import MongoLeaseStore
from adapters.mongo_read_models import MongoReadModelStore
from adapters.mongo_users import MongoUserStore
from adapters.sqlite_audit_seals import SqliteSealStore
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_leases import SqliteLeaseStore
from adapters.sqlite_read_models import SqliteReadModelStore
from adapters.sqlite_users import SqliteUserStore
from persistence.ports import EventStore, LeaseStore, SealStore, UserStore
from projections.ports import ReadModelStore
from tests.mongo.standin import MongoTestBackend

StoreFactory = Callable[[], Awaitable[EventStore]]

# "mongo": the in-process stand-in, or the server at FLP_TEST_MONGODB_URL when that is set.
STORE_KINDS = ["sqlite", "mongo"]


@pytest.fixture(params=STORE_KINDS)
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of one kind on one shared location (a second call = a second process' view)."""
    opened: list[EventStore] = []
    mongo = MongoTestBackend()

    async def make() -> EventStore:
        if request.param == "sqlite":
            store: EventStore = await SqliteEventStore(tmp_path / "events.db").open()
        elif request.param == "mongo":
            store = await MongoEventStore(mongo.connect()).open()
        else:  # pragma: no cover
            raise AssertionError(request.param)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    await mongo.drop()


@pytest.fixture
async def store(store_factory: StoreFactory) -> EventStore:
    return await store_factory()


READ_MODEL_KINDS = ["sqlite", "mongo"]


@pytest.fixture(params=READ_MODEL_KINDS)
async def read_models(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadModelStore]:
    mongo = MongoTestBackend()
    if request.param == "sqlite":
        rm: ReadModelStore = await SqliteReadModelStore(tmp_path / "read_models.db").open()
    elif request.param == "mongo":
        rm = await MongoReadModelStore(mongo.connect()).open()
    else:  # pragma: no cover
        raise AssertionError(request.param)
    yield rm
    await rm.close()
    await mongo.drop()


@pytest.fixture(params=READ_MODEL_KINDS)
async def read_model_views(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ReadModelStore, ReadModelStore]]:
    """Two stores on one location: a second replica's view of the same read models."""
    mongo = MongoTestBackend()
    views: list[ReadModelStore] = []
    for _ in range(2):
        if request.param == "sqlite":
            views.append(await SqliteReadModelStore(tmp_path / "read_models.db").open())
        else:
            views.append(await MongoReadModelStore(mongo.connect()).open())
    yield views[0], views[1]
    for view in views:
        await view.close()
    await mongo.drop()


@pytest.fixture(params=["sqlite", "mongo"])
async def users(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UserStore]:
    mongo = MongoTestBackend()
    store: UserStore
    if request.param == "sqlite":
        store = await SqliteUserStore(tmp_path / "users.db").open()
    else:
        store = await MongoUserStore(mongo.connect()).open()
    yield store
    await store.close()
    await mongo.drop()


@pytest.fixture(params=["sqlite", "mongo"])
async def seals(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SealStore]:
    mongo = MongoTestBackend()
    store: SealStore
    if request.param == "sqlite":
        store = await SqliteSealStore(tmp_path / "seals.db").open()
    else:
        store = await MongoSealStore(mongo.connect()).open()
    yield store
    await store.close()
    await mongo.drop()


class Clock:
    """A wall clock the test moves: leases expire when the test says so, not after a sleep."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


LeaseFactory = Callable[[], Awaitable[LeaseStore]]


@pytest.fixture(params=["sqlite", "mongo"])
async def lease_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[LeaseFactory, Clock]]:
    """Opens lease stores on one shared location (two calls = two replicas) with one test clock."""
    mongo = MongoTestBackend()
    clock = Clock()
    opened: list[LeaseStore] = []

    async def make() -> LeaseStore:
        store: LeaseStore
        if request.param == "sqlite":
            store = await SqliteLeaseStore(tmp_path / "read_models.db", clock).open()
        else:
            store = await MongoLeaseStore(mongo.connect(), clock).open()
        opened.append(store)
        return store

    yield make, clock
    for store in opened:
        await store.close()
    await mongo.drop()
