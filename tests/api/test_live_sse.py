"""Live push over Server-Sent Events, against a real uvicorn server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from config.settings import Settings
from flp.cli.sse_client import LiveDocs, SseMessage, read_sse
from flp.server import running_server
from tests.auth.helpers import admin_headers
from tests.conftest import job_body, round_body


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_server(settings) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10, headers=admin_headers(settings)) as client,
    ):
        yield client


async def collect(
    http: httpx.AsyncClient, path: str, n: int, last_event_id: str | None = None, live: asyncio.Event | None = None
) -> list[SseMessage]:
    out: list[SseMessage] = []
    async for message in read_sse(http, path, last_event_id, live=live):
        out.append(message)
        if len(out) == n:
            break
    return out


async def test_job_changes_are_pushed_as_they_happen(http: httpx.AsyncClient) -> None:
    await http.post("/jobs", json=job_body(job_id="j1"))
    caught_up = asyncio.Event()
    listener = asyncio.create_task(collect(http, "/live/jobs/j1", 3, live=caught_up))
    await asyncio.wait_for(caught_up.wait(), 10)  # the stream has sent the current state and is live
    await http.post("/jobs/j1/rounds", json=round_body(1))
    await http.post("/jobs/j1/cancel", json={"reason": "done"})
    messages = await asyncio.wait_for(listener, timeout=10)
    assert [m.event for m in messages] == ["job_detail"] * 3
    live = LiveDocs()
    docs = [live.apply(m) or {} for m in messages]
    statuses = [d["status"] for d in docs]
    assert statuses[0] == "pending" and statuses[-1] == "cancelled"
    assert [int(m.id or 0) for m in messages] == sorted(int(m.id or 0) for m in messages)
    assert docs[1]["rounds"][0]["completed"] is True
    assert "doc" in messages[0].data and all("patch" in m.data for m in messages[1:])  # then only what changed
    assert docs[-1] == (await http.get("/jobs/j1")).json()  # the patches rebuild the document exactly


async def test_board_stream_resumes_from_last_event_id(http: httpx.AsyncClient) -> None:
    await http.post("/jobs", json=job_body(job_id="a"))
    await http.post("/jobs", json=job_body(job_id="b"))
    first = await collect(http, "/live/jobs", 2)
    assert [m.data["key"] for m in first] == ["a", "b"]
    resume_from = first[0].id  # the client saw only the change to "a"
    await http.post("/jobs/a/cancel", json={"reason": "x"})
    resumed = await collect(http, "/live/jobs", 2, last_event_id=resume_from)
    assert [m.data["key"] for m in resumed] == ["b", "a"]
    assert resumed[1].data["doc"]["status"] == "cancelled"  # on resume, whole documents
    # resuming from the newest id replays nothing old: the next message is the next change
    caught_up = asyncio.Event()
    listener = asyncio.create_task(collect(http, "/live/jobs", 1, last_event_id=resumed[-1].id, live=caught_up))
    await asyncio.wait_for(caught_up.wait(), 10)
    await http.post("/jobs/b/cancel", json={"reason": "y"})
    (only,) = await asyncio.wait_for(listener, timeout=10)
    live = LiveDocs({m.data["key"]: m.data["doc"] for m in first})
    assert only.data["key"] == "b" and (live.apply(only) or {})["status"] == "cancelled"


async def test_unknown_job_stream_is_404(http: httpx.AsyncClient) -> None:
    r = await http.get("/live/jobs/nope")
    assert r.status_code == 404


async def read_raw(http: httpx.AsyncClient, path: str, caught_up: asyncio.Event) -> None:
    """Read a stream's raw bytes (the dashboard's carry HTML, not JSON) until cancelled."""
    async with http.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
        assert response.status_code == 200, path
        seen = b""
        async for chunk in response.aiter_raw():
            seen = (seen + chunk)[-4096:]
            if b"event: live" in seen:
                caught_up.set()


async def test_a_client_that_goes_away_is_unsubscribed(settings: Settings) -> None:
    """The stream loop does not poll for a disconnect: sse-starlette's listener ends it, and the
    subscription is dropped from the hub (a leak would keep every gone dashboard fed forever)."""
    async with running_server(settings) as srv:
        hub = srv.container.live
        headers = admin_headers(settings)
        async with httpx.AsyncClient(base_url=srv.url, timeout=10, headers=headers) as http:
            await http.post("/jobs", json=job_body(job_id="g1"))
            for path in ("/live/jobs", "/live/jobs/g1", "/ui/live/board"):
                caught_up = asyncio.Event()
                listener = asyncio.create_task(read_raw(http, path, caught_up))
                await asyncio.wait_for(caught_up.wait(), 10)
                assert hub.subscriber_count == 1, path
                listener.cancel()  # the client closes the connection
                with pytest.raises(asyncio.CancelledError):
                    await listener
                for _ in range(100):
                    if hub.subscriber_count == 0:
                        break
                    await asyncio.sleep(0.05)
                assert hub.subscriber_count == 0, path
            await http.post("/jobs", json=job_body(job_id="g2"))  # publishing to nobody is fine


async def test_a_pushed_change_continues_its_commands_trace(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With spans recording, each live message is sent in an `sse.send` span whose parent is the
    span of the command that caused the change (the stream asks for spans only then)."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)  # restored after the test
    async with (
        running_server(settings) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=10, headers=admin_headers(settings)) as http,
    ):
        caught_up = asyncio.Event()
        listener = asyncio.create_task(collect(http, "/live/jobs", 1, live=caught_up))
        await asyncio.wait_for(caught_up.wait(), 10)
        assert (await http.post("/jobs", json=job_body(job_id="t1"))).status_code == 201
        [message] = await asyncio.wait_for(listener, timeout=10)
    provider.shutdown()
    spans = exporter.get_finished_spans()
    command = next(s for s in spans if s.name == "command StartJob")
    sent = [s for s in spans if s.name == "sse.send"]
    assert sent and all(s.parent is not None and s.parent.span_id == command.context.span_id for s in sent)
    assert [s.attributes["flp.position"] for s in sent if s.attributes] == [int(message.id or 0)]
