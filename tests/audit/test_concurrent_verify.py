"""Verifying while commands are being appended never reports a false break (an event committed
but not yet sealed is waited for, not reported)."""

from __future__ import annotations

import asyncio

import httpx

from audit.verify import verify_store
from config.secrets import seal_key
from flp.wiring import Container
from tests.conftest import job_body


async def test_verify_during_appends_sees_no_false_break(api: httpx.AsyncClient, container: Container) -> None:
    async def start(i: int) -> int:
        return (await api.post("/jobs", json=job_body(job_id=f"c{i}"))).status_code

    seals = container.audit.seals
    key = seal_key(container.settings)
    writers = [asyncio.create_task(start(i)) for i in range(40)]
    reports = []
    while not all(w.done() for w in writers):
        reports.append(await verify_store(container.store, seals, key))
    assert [await w for w in writers] == [201] * 40
    reports.append(await verify_store(container.store, seals, key))
    assert all(r.ok for r in reports), [r.first_break for r in reports if not r.ok]
    assert reports[-1].events_checked == 40 and reports[-1].sealed_checked
