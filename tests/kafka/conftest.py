"""Kafka tests run against a real tansu broker started on a free loopback port per test."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from adapters.kafka_cloudevents import decode_value
from adapters.kafka_schemas import iter_schema_files
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from commands.handlers import CLIENT, TRAINING_JOB, CommandContext, CommandHandler
from config.settings import Settings
from domain.commands import (
    CancelJob,
    ClientResult,
    CompleteJob,
    JoinJob,
    RecordRoundResult,
    RegisterClient,
    StartJob,
)
from domain.events import JobConfig

TOPIC = "flp.events"
PARTITIONS = 3  # fewer than tansu's auto-created 4, see test_outages


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


@pytest.fixture
def kafka_settings(broker: TansuBroker, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "flp", kafka_bootstrap_servers=broker.bootstrap_servers, kafka_topic=TOPIC)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteEventStore]:
    s = await SqliteEventStore(tmp_path / "events.db").open()
    yield s
    await s.close()


@pytest.fixture
async def read_models(tmp_path: Path) -> AsyncIterator[SqliteReadModelStore]:
    rm = await SqliteReadModelStore(tmp_path / "read_models.db").open()
    yield rm
    await rm.close()


async def script_job(store: SqliteEventStore, job: str = "j1", rounds: int = 3, cancel: bool = False) -> None:
    """A job as an external runtime would drive it: clients, rounds, completion."""
    jobs = CommandHandler(store, TRAINING_JOB)
    clients = CommandHandler(store, CLIENT)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = CommandContext(actor="alice", traceparent=trace)
    names = [f"{job}-c{i}" for i in range(3)]
    for name in names:
        await clients.execute(name, RegisterClient(client_id=name, name=name.upper()), ctx)
    config = JobConfig(name=f"job {job}", rounds=rounds, min_clients=2, num_clients=3, runtime="external")
    await jobs.execute(job, StartJob(job_id=job, config=config), ctx)
    for name in names[:2]:
        await jobs.execute(job, JoinJob(client_id=name), CommandContext(actor="runtime"))
    for rnd in range(1, rounds + 1):
        results = [ClientResult(client_id=n, num_examples=100 + rnd, metrics={"loss": 1.0 / rnd}) for n in names]
        cmd = RecordRoundResult(round=rnd, results=results, central_metrics={"accuracy": 0.5 + rnd / 10})
        await jobs.execute(job, cmd, CommandContext(actor="runtime", correlation_id=f"{job}-r{rnd}"))
    if cancel:
        await jobs.execute(job, CancelJob(reason="enough"), ctx)
    else:
        await jobs.execute(job, CompleteJob(final_metrics={"accuracy": 0.9}), ctx)


@dataclass(frozen=True)
class Message:
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: dict[str, Any]

    @property
    def position(self) -> int:
        return int(self.value["position"])


async def read_topic(
    bootstrap: str,
    done: Callable[[list[Message]], bool],
    timeout_s: float = 30.0,
    topic: str = TOPIC,
    partitions: int = PARTITIONS,
) -> list[Message]:
    """Every message of the topic from the beginning (all partitions), until `done(messages)`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[Message] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(timeout_s):
            while not done(out):
                batches = await consumer.getmany(timeout_ms=200)
                for tp, records in batches.items():
                    for r in records:
                        assert r.key is not None and r.value is not None
                        headers = {k: v.decode() for k, v in r.headers}
                        out.append(Message(tp.partition, r.offset, r.key.decode(), headers, decode_value(r.value)))
    finally:
        await consumer.stop()
    return out


def positions_cover(expected: set[int]) -> Callable[[list[Message]], bool]:
    return lambda msgs: expected <= {m.position for m in msgs}


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def format_checker() -> jsonschema.FormatChecker:
    """jsonschema checks `date-time` only with an optional package; check RFC 3339 here."""
    checker = jsonschema.FormatChecker()
    checker.checks("date-time", raises=ValueError)(_date_time)
    return checker


def _date_time(value: object) -> bool:
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("z", "Z"))  # raises ValueError on impossible dates
    return True


def schema_validators(directory: Path) -> dict[str, jsonschema.Draft202012Validator]:
    return {
        ce_type: jsonschema.Draft202012Validator(schema, format_checker=format_checker())
        for ce_type, schema in iter_schema_files(directory)
    }
