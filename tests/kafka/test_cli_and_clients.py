"""The topic read by other clients: confluent-kafka (librdkafka) and `flp events consume`; and
`flp schema export`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import orjson
import pytest
import typer
from aiokafka import AIOKafkaProducer
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from typer.testing import CliRunner

from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from flp.cli.kafka import consume, schema_app
from projections.registry import PROJECTION_NAMES, all_projections
from projections.runner import ProjectionRunner
from tests.kafka.conftest import PARTITIONS, TOPIC, schema_validators, script_job


def publish_scripted_jobs(broker: TansuBroker, tmp_path: Path) -> list[dict[str, object]]:
    """Store a scripted job, relay it; returns the stored events (as dicts)."""

    async def go() -> list[dict[str, object]]:
        store = await SqliteEventStore(tmp_path / "events.db").open()
        rm = await SqliteReadModelStore(tmp_path / "rm.db").open()
        try:
            await script_job(store, "j1")
            settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers, kafka_topic=TOPIC)
            relay = KafkaRelay(store, rm, settings, RelayConfig(partitions=PARTITIONS))
            task = asyncio.create_task(relay.run())
            await relay.wait_published(await store.head_position())
            await relay.stop()
            await task
            return [e.to_dict() for e in await store.read_all(0, 10_000)]
        finally:
            await rm.close()
            await store.close()

    return asyncio.run(go())


def cli() -> typer.Typer:
    app = typer.Typer()
    events = typer.Typer()
    events.command("consume")(consume)
    app.add_typer(events, name="events")
    app.add_typer(schema_app, name="schema")
    return app


@pytest.fixture
def schemas(tmp_path: Path) -> dict[str, jsonschema.Draft202012Validator]:
    result = CliRunner().invoke(cli(), ["schema", "export", str(tmp_path / "schemas")])
    assert result.exit_code == 0, result.output
    return schema_validators(tmp_path / "schemas")


def test_confluent_kafka_reads_valid_cloudevents(
    broker: TansuBroker, tmp_path: Path, schemas: dict[str, jsonschema.Draft202012Validator]
) -> None:
    stored = publish_scripted_jobs(broker, tmp_path)
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap_servers, "group.id": "confluent-check", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        messages: list[Message] = []
        for _ in range(200):
            if len(messages) >= len(stored):
                break
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            messages.append(msg)
    finally:
        consumer.close()
    assert len(messages) == len(stored)
    by_id = {e["event_id"]: e for e in stored}
    for msg in messages:
        value = msg.value()
        key = msg.key()
        assert value is not None and key is not None
        ce = json.loads(value)
        schemas[ce["type"]].validate(ce)
        original = by_id[ce["id"]]
        assert key.decode() == original["stream_id"]
        assert ce["data"] == original["data"] and ce["position"] == original["position"]
        raw_headers: list[tuple[str, bytes]] = list(msg.headers() or [])  # type: ignore[arg-type]
        headers = {k: v.decode() for k, v in raw_headers}
        assert headers["content-type"] == "application/cloudevents+json"
        if "traceparent" in original["metadata"]:  # type: ignore[operator]
            assert headers["traceparent"] == original["metadata"]["traceparent"]  # type: ignore[index]


def test_flp_events_consume_prints_json_lines(
    broker: TansuBroker, tmp_path: Path, schemas: dict[str, jsonschema.Draft202012Validator]
) -> None:
    stored = publish_scripted_jobs(broker, tmp_path)
    env = {"FLP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "FLP_KAFKA_TOPIC": TOPIC}
    runner = CliRunner()
    args = ["events", "consume", "--from-beginning", "--limit", str(len(stored)), "--idle-exit", "20"]
    result = runner.invoke(cli(), args, env=env)
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert sorted(ce["position"] for ce in lines) == [e["position"] for e in stored]
    for ce in lines:
        schemas[ce["type"]].validate(ce)

    # in a consumer group, with Kafka coordinates
    args = ["events", "consume", "--from-beginning", "--group", "g1", "--kafka-meta", "--limit", "3"]
    result = runner.invoke(cli(), args, env=env)
    assert result.exit_code == 0, result.output
    wrapped = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(wrapped) == 3
    assert all(
        {"partition", "offset", "key"} <= w["kafka"].keys() and w["event"]["specversion"] == "1.0" for w in wrapped
    )


def test_schema_export_writes_every_type_and_asyncapi(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["schema", "export", str(tmp_path / "out")], env={"FLP_KAFKA_TOPIC": "x.y"})
    assert result.exit_code == 0, result.output
    files = {p.name for p in (tmp_path / "out" / "events").iterdir()}
    assert "flp.JobCreated.v1.json" in files and "flp.ClientRegistered.v1.json" in files
    doc = json.loads((tmp_path / "out" / "asyncapi.json").read_text())
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["events"]["address"] == "x.y"
    assert len(doc["components"]["messages"]) == len(files)


def test_flp_project_source_kafka_builds_the_read_models(broker: TansuBroker, tmp_path: Path) -> None:
    """The worker as a separate process; a foreign message on the topic is skipped."""
    data_dir = tmp_path / "flp"
    data_dir.mkdir()
    settings = Settings(data_dir=data_dir, kafka_bootstrap_servers=broker.bootstrap_servers, kafka_topic=TOPIC)

    async def prepare() -> int:
        store = await SqliteEventStore(data_dir / "flp.db").open()
        rm = await SqliteReadModelStore(tmp_path / "relay-checkpoint.db").open()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            await script_job(store, "j1")
            await producer.send_and_wait(TOPIC, b"not an event", key=b"job-j1", partition=0)
            relay = KafkaRelay(store, rm, settings, RelayConfig(partitions=PARTITIONS))
            task = asyncio.create_task(relay.run())
            head = await store.head_position()
            await relay.wait_published(head)
            await relay.stop()
            await task
            return head
        finally:
            await producer.stop()
            await rm.close()
            await store.close()

    async def checkpoints(path: Path) -> tuple[int, dict[str, object]]:
        rm = await SqliteReadModelStore(path).open()
        try:
            low = min([await rm.get_checkpoint(name) for name in PROJECTION_NAMES])
            return low, {name: await rm.dump(name) for name in PROJECTION_NAMES}
        finally:
            await rm.close()

    async def store_fed() -> dict[str, object]:
        store = await SqliteEventStore(data_dir / "flp.db").open()
        rm = await SqliteReadModelStore(tmp_path / "store-fed.db").open()
        try:
            await ProjectionRunner(rm, all_projections()).catch_up(store)
            return {name: await rm.dump(name) for name in PROJECTION_NAMES}
        finally:
            await rm.close()
            await store.close()

    head = asyncio.run(prepare())
    env = {
        **os.environ,
        "FLP_DATA_DIR": str(data_dir),
        "FLP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FLP_KAFKA_TOPIC": TOPIC,
    }
    code = "from flp.cli import main; main()"
    args = [sys.executable, "-c", code, "project", "--source", "kafka", "--group", "cli-worker"]
    worker = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        low, kafka_fed = 0, dict[str, object]()
        while low < head and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.5)
            if (data_dir / "flp-read-models.db").exists():
                low, kafka_fed = asyncio.run(checkpoints(data_dir / "flp-read-models.db"))
        assert low == head, worker.stdout.read().decode() if worker.poll() is not None and worker.stdout else low
    finally:
        worker.send_signal(signal.SIGINT)
        output = worker.communicate(timeout=30)[0].decode()
    assert worker.returncode == 0, output
    assert "skipping" in output  # the foreign message was logged and passed over
    assert kafka_fed == asyncio.run(store_fed())
