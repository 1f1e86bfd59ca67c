"""With no span recording (no SDK provider), the command path starts no spans at all, yet the
events carry the same traceparent as before; with a provider installed, the spans are there."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.sqlite_event_store import SqliteEventStore
from commands.handlers import TRAINING_JOB, CommandContext, CommandHandler
from domain import commands as c
from domain.events import JobConfig
from telemetry import tracing

CONFIG = JobConfig(name="n", rounds=3, min_clients=1, runtime="external")
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CONSUMER = "00-11111111111111111111111111111111-2222222222222222-01"


@pytest.fixture
async def handler(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await SqliteEventStore(tmp_path / "e.db").open()
    yield CommandHandler(store, TRAINING_JOB)
    await store.close()


async def test_not_recording_keeps_the_callers_traceparent(handler: CommandHandler) -> None:  # type: ignore[type-arg]
    assert not tracing.recording()
    plain = await handler.execute("a", c.StartJob(job_id="a", config=CONFIG))
    assert "traceparent" not in plain.events[0].metadata
    given = await handler.execute("b", c.StartJob(job_id="b", config=CONFIG), CommandContext(traceparent=CALLER))
    assert given.events[0].metadata["traceparent"] == CALLER
    with tracing.continued(CONSUMER):  # a consumer of the feed sending a command
        inside = await handler.execute("d", c.StartJob(job_id="d", config=CONFIG))
    assert inside.events[0].metadata["traceparent"] == CONSUMER


async def test_recording_starts_the_command_and_append_spans(
    handler: CommandHandler,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # the suite's default; this test records
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)  # restored after the test
    assert tracing.recording()
    result = await handler.execute("e", c.StartJob(job_id="e", config=CONFIG), CommandContext(traceparent=CALLER))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"command StartJob", "event_store.append"} <= set(spans)
    command = spans["command StartJob"]
    assert f"{command.context.trace_id:032x}" == CALLER.split("-")[1]  # a child of the caller's span
    assert result.events[0].metadata["traceparent"].split("-")[2] == f"{command.context.span_id:016x}"
    provider.shutdown()
