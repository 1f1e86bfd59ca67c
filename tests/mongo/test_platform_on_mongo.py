"""The whole platform (API, command handlers, projections) on the Mongo adapters: nothing above
`adapters/` changes, and rebuilt read models equal the live ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.mongo_client import MongoConnection
from api.app import create_app
from config.settings import Settings
from flp.wiring import Container, build_container
from projections.registry import PROJECTION_NAMES
from tests.auth.helpers import admin_headers
from tests.mongo.standin import MongoTestBackend
from tests.test_projection_rebuild import scripted_workload


@pytest.fixture
async def mongo_container(
    backend: MongoTestBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Container]:
    def from_settings(cls: type[MongoConnection], settings: Any) -> MongoConnection:
        return MongoConnection(None, backend.database())

    monkeypatch.setattr(MongoConnection, "from_settings", classmethod(from_settings))
    settings = Settings(data_dir=tmp_path / "flp", flower_mode="off", api_port=0, store_url="mongodb://test/flp")
    c = await build_container(settings)
    await c.start()
    yield c
    await c.stop()


async def test_platform_runs_on_mongo_and_rebuild_equals_live(
    mongo_container: Container, backend: MongoTestBackend
) -> None:
    container = mongo_container
    app = create_app(container, manage_lifespan=False)
    headers = admin_headers(container.settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://flp.test", headers=headers
    ) as api:
        await scripted_workload(api, jobs=4)
        head = await container.store.head_position()
        await container.projections.wait_for(head)
        live = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
        assert len(live["job_board"]) == 4 and len(live["client_fleet"]) == 3
        assert await container.projections.rebuild(container.store) == head
        assert {name: await container.read_models.dump(name) for name in PROJECTION_NAMES} == live
        board = (await api.get("/jobs")).json()
        assert board  # served from the Mongo read models
    db = backend.database()
    assert await db["event_commits"].count_documents({"stream_id": {"$exists": True}}) > 0
    assert await db["read_models"].count_documents({"projection": "job_board"}) == 4
