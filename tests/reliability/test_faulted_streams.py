"""A server that always starts: an event that no longer decodes (written by an older bug, or a
manual edit) faults its stream; the API still serves, /health and /metrics say which stream and
where, `flp audit verify` names the position, and every other stream goes on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from typer.testing import CliRunner

from api.app import create_app
from config.settings import Settings
from flp.cli import app as cli
from flp.wiring import Container, build_container
from persistence.records import NewEvent
from tests.auth.helpers import admin_headers
from tests.conftest import job_body, round_body


@asynccontextmanager
async def platform(settings: Settings) -> AsyncIterator[tuple[Container, httpx.AsyncClient]]:
    container = await build_container(settings, with_runtime=False)
    await container.start()
    try:
        app = create_app(container, manage_lifespan=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=admin_headers(settings)) as h:
            yield container, h
    finally:
        await container.stop()


def round_completed_with_null_duration(job_id: str) -> NewEvent:
    """What an older flp stored for `"duration_s": 1e999`: a sealed, well-chained event whose
    payload does not validate (duration_s null)."""
    data = {"job_id": job_id, "round": 1, "sampled": 2, "replied": 2, "failed": 0, "train_metrics": {},
            "evaluate_metrics": {}, "central_metrics": {}, "duration_s": None, "model_sha256": None}  # fmt: skip
    return NewEvent(str(uuid.uuid4()), "RoundCompleted", 1, data, {"actor": "old-bug"})


async def test_an_undecodable_event_faults_its_stream_only(settings: Settings) -> None:
    async with platform(settings) as (container, h):
        for job in ("A", "B"):
            assert (await h.post("/jobs", json=job_body(job_id=job))).status_code == 201
        bad = await container.store.append("job-A", [round_completed_with_null_duration("A")], 1)
        bad_position = bad.events[0].position
        assert (await h.post("/jobs/B/rounds", json=round_body(1))).status_code == 200
    for restart in range(2):  # starts, and keeps starting
        async with platform(settings) as (container, h):
            health = (await h.get("/health")).json()
            assert health["status"] == "degraded"
            assert [(f["stream_id"], f["position"]) for f in health["faulted_streams"]] == [("job-A", bad_position)]
            assert "duration_s" in health["faulted_streams"][0]["reason"]
            scrape = {"Authorization": f"Bearer {container.auth.scrape_credential.decode()}"}
            assert "flp_faulted_streams 1.0" in (await h.get("/metrics", headers=scrape)).text
            r = await h.get("/jobs/A/state")
            assert (
                r.status_code == 409 and r.json()["code"] == "stream_faulted" and r.json()["position"] == bad_position
            )
            r = await h.post("/jobs/A/cancel", json={"reason": "x"})
            assert r.status_code == 409 and "duration_s" in r.json()["detail"]
            assert (await h.get("/jobs/A")).json()["rounds"] == []  # frozen before the bad event
            # every other stream goes on, live
            assert (await h.post("/jobs/B/rounds", json=round_body(2 + restart))).status_code == 200
            assert len((await h.get("/jobs/B")).json()["rounds"]) == 2 + restart
            assert (await h.post("/jobs", json=job_body(job_id=f"C{restart}"))).status_code == 201
            # a later event of the faulted stream (appended by hand) is not applied over the gap
            if restart == 0:
                later = NewEvent(str(uuid.uuid4()), "JobCancelled", 1, {"job_id": "A", "reason": "r"}, {"actor": "t"})
                await container.store.append("job-A", [later], None)
                await container.projections.wait_for(await container.store.head_position())
                assert (await h.get("/jobs/A")).json()["status"] == "pending"
            rebuilt = {}
            for name in ("job_board", "job_detail", "stream_faults"):
                rebuilt[name] = await container.read_models.dump(name)
            await container.projections.rebuild(container.store)
            for name, live in rebuilt.items():
                assert await container.read_models.dump(name) == live, name
    env = {"FLP_DATA_DIR": str(settings.data_dir)}  # the CLI runs its own event loop: off this one
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["audit", "verify", "--json"], env=env)
    assert result.exit_code == 1, result.output
    brk = json.loads(result.stdout)["first_break"]
    assert (brk["position"], brk["code"], brk["stream_id"]) == (bad_position, "undecodable", "job-A"), brk
