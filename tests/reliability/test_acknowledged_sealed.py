"""Acknowledged implies sealed: the seal of every event is written in the very transaction that
stores it, so a 2xx answer means both are durable; the seal store's copy follows, and a crash
before the copy is healed by the next start on its own."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from audit.verify import verify_store
from config.secrets import seal_key
from config.settings import Settings
from flp.wiring import build_container
from persistence.records import RecordedEvent
from persistence.seals import seal_of
from tests.auth.helpers import admin_headers
from tests.conftest import job_body, round_body


def stored(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "flp.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM events ORDER BY position")]


def mirrored(data_dir: Path) -> dict[int, str]:
    with sqlite3.connect(data_dir / "audit-seals.db") as db:
        return dict(db.execute("SELECT position, seal FROM seals"))


async def test_every_acknowledged_event_is_sealed_in_its_own_row(api: httpx.AsyncClient, settings: Settings) -> None:
    key = seal_key(settings)
    r = await api.post("/jobs", json=job_body(job_id="s1"))
    assert r.status_code == 201
    rows = stored(settings.data_dir)  # read at once, from the database file, bypassing the app
    assert len(rows) == 1 and rows[0]["seal"] == seal_of(
        key, RecordedEvent.from_dict({**rows[0], "data": {}, "metadata": {}})
    )
    for rnd in (1, 2):
        assert (await api.post("/jobs/s1/rounds", json=round_body(rnd))).status_code == 200
    for row in stored(settings.data_dir):
        event = RecordedEvent.from_dict({**row, "data": {}, "metadata": {}})
        assert row["seal"] == seal_of(key, event), row["position"]


async def test_a_lost_seal_copy_is_made_at_the_next_start_and_replays_return_the_sealed_original(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As if the process died after the commit and before the copy: copying fails throughout the
    first run, the client still got its 2xx; the next start copies the seals by itself."""
    from adapters.sqlite_audit_seals import SqliteSealStore

    async def lost(self: SqliteSealStore, seals: list[Any]) -> None:
        raise OSError("simulated crash before the seal copy")

    first = await build_container(settings, with_runtime=False)
    await first.start()
    monkeypatch.setattr(SqliteSealStore, "put", lost)
    app = create_app(first, manage_lifespan=False)
    headers = {**admin_headers(settings), "Idempotency-Key": "once"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers) as h:
        original = await h.post("/jobs", json=job_body(job_id="late"))
        assert original.status_code == 201
    await first.stop()
    monkeypatch.undo()
    assert mirrored(settings.data_dir) == {}
    second = await build_container(settings, with_runtime=False)
    await second.start()  # no operator step
    try:
        assert set(mirrored(settings.data_dir)) == {1}
        report = await verify_store(second.store, second.audit.seals, seal_key(settings))
        assert report.ok and report.sealed_checked, report.first_break
        app = create_app(second, manage_lifespan=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as h:
            retry = await h.post("/jobs", json=job_body(job_id="late"))
        assert retry.status_code == 201 and retry.json()["duplicate"] is True
        assert retry.json()["events"] == original.json()["events"]
        assert retry.json()["events"][0]["seal"] == mirrored(settings.data_dir)[1]
    finally:
        await second.stop()
