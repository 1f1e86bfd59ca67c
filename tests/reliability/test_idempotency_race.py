"""The same Idempotency-Key gets the same answer whatever the interleaving: two identical
requests sent at the same moment both get the original events (never `events: []` or a 409)."""

from __future__ import annotations

import asyncio

import httpx

from flp.wiring import Container
from tests.conftest import job_body, round_body


def event_ids(r: httpx.Response) -> list[str]:
    return [e["event_id"] for e in r.json()["events"]]


async def twins(api: httpx.AsyncClient, path: str, body: dict[str, object], key: str) -> tuple[httpx.Response, ...]:
    headers = {"Idempotency-Key": key}
    return tuple(await asyncio.gather(*(api.post(path, json=body, headers=headers) for _ in range(2))))


async def test_concurrent_twins_get_the_same_answer(api: httpx.AsyncClient, container: Container) -> None:
    for i in range(40):
        job = f"race-{i}"
        a, b = await twins(api, "/jobs", job_body(job_id=job), f"start-{i}")
        assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
        assert event_ids(a) == event_ids(b) and len(event_ids(a)) == 1
        a, b = await twins(api, f"/jobs/{job}/clients", {"client_id": "c"}, f"join-{i}")
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        assert event_ids(a) == event_ids(b) and len(event_ids(a)) == 1
        a, b = await twins(api, f"/jobs/{job}/rounds", round_body(1), f"round-{i}")
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        assert event_ids(a) == event_ids(b) and event_ids(a)
        a, b = await twins(api, f"/jobs/{job}/cancel", {"reason": "enough"}, f"cancel-{i}")
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        assert event_ids(a) == event_ids(b) and len(event_ids(a)) == 1
        assert {a.json()["duplicate"], b.json()["duplicate"]} == {False, True}
        history = (await api.get(f"/jobs/{job}/events")).json()["items"]
        assert [e["type"] for e in history].count("JobCancelled") == 1


async def test_a_key_reused_on_another_stream_is_409(api: httpx.AsyncClient) -> None:
    assert (await api.post("/jobs", json=job_body(job_id="k1"), headers={"Idempotency-Key": "same"})).status_code == 201
    r = await api.post("/jobs", json=job_body(job_id="k2"), headers={"Idempotency-Key": "same"})
    assert r.status_code == 409 and "idempotency key" in r.json()["detail"].lower()
