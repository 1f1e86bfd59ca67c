"""One OpenTelemetry trace per command, end to end, exported to a real OTLP receiver: the HTTP
span, the command, the append, the projections and the Kafka publish; the Kafka record's
traceparent header names the same trace. And tracing off means nothing installed."""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from adapters.kafka_tansu import TansuBroker
from config.settings import Settings
from flp.wiring import build_container
from telemetry import tracing
from tests.conftest import job_body
from tests.observability.conftest import Spans, client, serve

TOPIC = "flp.traced"


def by_trace(spans: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for span in spans:
        out[span.trace_id.hex()].append(span)
    return out


def trace_with(names: set[str]):  # type: ignore[no-untyped-def]
    def done(spans: list[Any]) -> bool:
        return any(names <= {s.name for s in group} for group in by_trace(spans).values())

    return done


async def test_a_command_is_one_trace_from_http_to_kafka(tmp_path: Path, otlp: tuple[Spans, int]) -> None:
    spans, port = otlp
    wanted = {
        "POST /jobs",
        "command StartJob",
        "event_store.append",
        "projection.apply job_board",
        "projection.apply job_detail",
        "kafka.publish",
    }
    with (
        TansuBroker() as broker,
        serve(
            tmp_path / "flp",
            port,
            FLP_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
            FLP_KAFKA_TOPIC=TOPIC,
            FLP_KAFKA_PARTITIONS="3",
        ) as served,
    ):
        async with client(served) as http:
            r = await http.post("/jobs", json=job_body(job_id="traced"))
            assert r.status_code == 201
            appended = r.json()["events"][0]
        found = await spans.until(trace_with(wanted))
        (trace_id,) = [t for t, group in by_trace(found).items() if wanted <= {s.name for s in group}]
        group = {s.name: s for s in by_trace(found)[trace_id]}
        # parent links: HTTP -> command -> append; the consumers are children of the command
        command = group["command StartJob"]
        assert command.parent_span_id == group["POST /jobs"].span_id
        assert group["event_store.append"].parent_span_id == command.span_id
        assert group["projection.apply job_board"].parent_span_id == command.span_id
        assert group["kafka.publish"].parent_span_id == command.span_id
        attrs = {a.key: a.value.string_value or a.value.int_value for a in command.attributes}
        assert attrs["flp.outcome"] == "appended" and attrs["flp.stream_id"] == "job-traced"
        publish = {a.key: a.value.string_value for a in group["kafka.publish"].attributes}
        assert publish["messaging.system"] == "kafka" and publish["messaging.destination.name"] == TOPIC
        # the stored event and the Kafka record name that trace
        assert appended["metadata"]["traceparent"].split("-")[1] == trace_id
        consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest")
        await consumer.start()
        try:
            batch = await consumer.getmany(timeout_ms=10_000)
            records = [m for ms in batch.values() for m in ms]
        finally:
            await consumer.stop()
        assert records
        header = dict(records[0].headers)["traceparent"].decode()
        assert header.split("-")[1] == trace_id


async def test_without_an_endpoint_nothing_is_installed(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    container = await build_container(Settings(data_dir=tmp_path / "flp", flower_mode="off"))
    await container.start()
    await container.stop()
    assert not tracing.active()
    assert not [t for t in threading.enumerate() if "Otel" in t.name or "BatchSpan" in t.name]
