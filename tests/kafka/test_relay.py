"""The relay publishes a scripted job's events: all of them, in per-key order, valid CloudEvents."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

from adapters.kafka_cloudevents import from_cloudevent
from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.kafka_schemas import export_schemas
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from persistence.chain import expected_hash
from tests.kafka.conftest import PARTITIONS, positions_cover, read_topic, schema_validators, script_job


async def test_scripted_job_arrives_in_order_and_valid(
    broker: TansuBroker,
    kafka_settings: Settings,
    store: SqliteEventStore,
    read_models: SqliteReadModelStore,
    tmp_path: Path,
) -> None:
    relay = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=PARTITIONS))
    task = asyncio.create_task(relay.run())
    await script_job(store, "j1")  # some events before the relay catches up...
    await relay.wait_published(await store.head_position())
    await script_job(store, "j2", cancel=True)  # ...and some while it follows the feed
    head = await store.head_position()
    await relay.wait_published(head)
    assert await relay.lag() == 0
    assert await read_models.get_checkpoint("kafka_relay") == head
    await relay.stop()
    await task

    stored = await store.read_all(0, 10_000)
    assert [e.position for e in stored] == list(range(1, head + 1))
    messages = await read_topic(broker.bootstrap_servers, positions_cover(set(range(1, head + 1))))
    assert len(messages) == head  # a healthy broker: no duplicates either

    export_schemas(tmp_path / "schemas")
    validators = schema_validators(tmp_path / "schemas")
    by_id = {e.event_id: e for e in stored}
    per_key: dict[str, list[int]] = defaultdict(list)
    partition_of: dict[str, set[int]] = defaultdict(set)
    for m in messages:
        validators[m.value["type"]].validate(m.value)
        assert m.headers["content-type"] == "application/cloudevents+json"
        original = by_id[m.value["id"]]
        assert from_cloudevent(m.value) == original  # lossless: the stored event comes back exactly
        assert expected_hash(from_cloudevent(m.value)) == m.value["hash"]  # integrators can verify the chain
        assert m.key == original.stream_id == m.value["subject"]
        if "traceparent" in original.metadata:
            assert m.headers["traceparent"] == original.metadata["traceparent"]
        else:
            assert "traceparent" not in m.headers
        per_key[m.key].append(m.value["streamversion"])
        partition_of[m.key].add(m.partition)
    # in partition order (read_topic keeps each partition's order), every stream is 1, 2, 3, ...
    for key, versions in per_key.items():
        assert versions == list(range(1, len(versions) + 1)), key
        assert len(partition_of[key]) == 1, key
    assert {m.value["type"] for m in messages} >= {"flp.JobCreated.v1", "flp.RoundCompleted.v1", "flp.JobCancelled.v1"}
    assert any("traceparent" in m.headers for m in messages)


async def test_restart_resumes_from_checkpoint(
    broker: TansuBroker, kafka_settings: Settings, store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    await script_job(store, "j1")
    first_head = await store.head_position()
    relay = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=PARTITIONS))
    task = asyncio.create_task(relay.run())
    await relay.wait_published(first_head)
    await relay.stop()
    await task
    await script_job(store, "j2")
    head = await store.head_position()
    assert await relay.lag() == head - first_head

    relay2 = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=PARTITIONS))
    task = asyncio.create_task(relay2.run())
    await relay2.wait_published(head)
    await relay2.stop()
    await task
    messages = await read_topic(broker.bootstrap_servers, positions_cover(set(range(1, head + 1))))
    assert sorted(m.position for m in messages) == list(range(1, head + 1))  # nothing twice


async def test_topic_with_too_few_partitions_is_refused(
    broker: TansuBroker, kafka_settings: Settings, store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    """Keys must never move partitions: a relay configured for more partitions than exist waits."""
    await script_job(store, "j1")
    small = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=2))
    task = asyncio.create_task(small.run())
    await small.wait_published(1)
    await small.stop()
    await task
    big = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=PARTITIONS, backoff_initial_s=0.05))
    task = asyncio.create_task(big.run())
    await big.wait_for(lambda r: r.failures >= 2, timeout_s=10)
    assert big.state == "retrying" and "partitions" in (big.last_error or "")
    await big.stop()
    await task
