"""`FLP_STORE_URL=mongodb://...` builds the Mongo adapters on one shared connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from adapters.mongo_client import MongoConnection, url_with_database
from adapters.mongo_event_store import MongoEventStore
from adapters.mongo_read_models import MongoReadModelStore
from config.settings import Settings
from flp.wiring import open_stores
from persistence.records import NewEvent
from tests.mongo.standin import MongoTestBackend


def test_url_with_database_keeps_hosts_and_options() -> None:
    assert url_with_database("mongodb://a:1,b:2/prod?replicaSet=rs0&w=1", "bench") == (
        "mongodb://a:1,b:2/bench?replicaSet=rs0&w=1"
    )
    assert url_with_database("mongodb://localhost", "bench") == "mongodb://localhost/bench"
    assert (
        url_with_database("mongodb+srv://u:p@c.example.net/?tls=true", "x")
        == "mongodb+srv://u:p@c.example.net/x?tls=true"
    )


async def test_mongodb_url_selects_the_mongo_adapters(
    backend: MongoTestBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    seen: list[Settings] = []

    class Client:
        async def close(self) -> None:
            closed.append(True)

    def from_settings(cls: type[MongoConnection], settings: Any) -> MongoConnection:
        seen.append(settings)
        return MongoConnection(Client(), backend.database())

    monkeypatch.setattr(MongoConnection, "from_settings", classmethod(from_settings))
    settings = Settings(store_url="mongodb://db1:27017,db2:27017/flp?replicaSet=rs0")
    store, read_models = await open_stores(settings)
    assert isinstance(store, MongoEventStore) and isinstance(read_models, MongoReadModelStore)
    assert seen == [settings]
    event = NewEvent(str(uuid.uuid4()), "ClientJoined", 1, {"job_id": "j", "client_id": "c"}, {})
    await store.append("job-j", [event], expected_version=0)
    assert [e.event_id for e in await store.read_all(0)] == [event.event_id]
    await store.close()
    assert closed == []  # the read-model store still uses the client
    await read_models.close()
    assert closed == [True]
