"""`flp project --source kafka`: read models built from the topic equal those built from the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.kafka_projection_source import KafkaProjectionWorker
from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from projections.registry import PROJECTION_NAMES, all_projections
from projections.runner import ProjectionRunner
from tests.kafka.conftest import PARTITIONS, script_job


async def relay_all(store: SqliteEventStore, checkpoints: SqliteReadModelStore, settings: Settings) -> int:
    """Run a relay until the topic has everything stored; returns the head position."""
    relay = KafkaRelay(store, checkpoints, settings, RelayConfig(partitions=PARTITIONS))
    task = asyncio.create_task(relay.run())
    head = await store.head_position()
    await relay.wait_published(head)
    await relay.stop()
    await task
    return head


async def store_fed_dump(store: SqliteEventStore, path: Path) -> dict[str, object]:
    rm = await SqliteReadModelStore(path).open()
    try:
        await ProjectionRunner(rm, all_projections()).catch_up(store)
        return {name: await rm.dump(name) for name in PROJECTION_NAMES}
    finally:
        await rm.close()


@pytest.fixture
async def kafka_read_models(tmp_path: Path) -> AsyncIterator[SqliteReadModelStore]:
    rm = await SqliteReadModelStore(tmp_path / "kafka-read-models.db").open()
    yield rm
    await rm.close()


async def test_kafka_fed_read_models_equal_store_fed(
    kafka_settings: Settings,
    store: SqliteEventStore,
    read_models: SqliteReadModelStore,
    kafka_read_models: SqliteReadModelStore,
    tmp_path: Path,
) -> None:
    for job in ("j1", "j2", "j3"):
        await script_job(store, job, cancel=job == "j2")
    head = await relay_all(store, read_models, kafka_settings)
    # a relay that lost its checkpoint publishes half the stream again: duplicates on the topic
    await read_models.set_checkpoint("kafka_relay", head // 2)
    assert await relay_all(store, read_models, kafka_settings) == head

    worker = KafkaProjectionWorker(kafka_read_models, kafka_settings, group="dash-1", session_timeout_ms=6000)
    task = asyncio.create_task(worker.run())
    await worker.wait_applied(head)
    await worker.stop()
    await task
    assert worker.duplicates >= head - head // 2
    kafka_fed = {name: await kafka_read_models.dump(name) for name in PROJECTION_NAMES}
    assert kafka_fed == await store_fed_dump(store, tmp_path / "store-fed-1.db")
    assert kafka_fed["job_board"].keys() == {"j1", "j2", "j3"}

    # more events; the worker restarts in the same group and resumes from its committed offsets
    await script_job(store, "j4")
    head = await relay_all(store, read_models, kafka_settings)
    worker = KafkaProjectionWorker(kafka_read_models, kafka_settings, group="dash-1", session_timeout_ms=6000)
    task = asyncio.create_task(worker.run())
    await worker.wait_applied(head)
    await worker.stop()
    await task
    assert worker.duplicates == 0  # nothing before the committed offsets was read again
    kafka_fed = {name: await kafka_read_models.dump(name) for name in PROJECTION_NAMES}
    assert kafka_fed == await store_fed_dump(store, tmp_path / "store-fed-2.db")


async def test_second_worker_in_the_group_stands_by_and_takes_over(
    kafka_settings: Settings,
    store: SqliteEventStore,
    read_models: SqliteReadModelStore,
    kafka_read_models: SqliteReadModelStore,
    tmp_path: Path,
) -> None:
    """One group, two workers on the same read models: one owns every partition, the other waits;
    when the owner leaves, the standby takes over where the committed offsets are."""
    await script_job(store, "j1")
    head = await relay_all(store, read_models, kafka_settings)
    first = KafkaProjectionWorker(kafka_read_models, kafka_settings, group="dash", session_timeout_ms=6000)
    first_task = asyncio.create_task(first.run())
    await first.wait_applied(head)
    standby_models = await SqliteReadModelStore(tmp_path / "kafka-read-models.db").open()  # same file
    second = KafkaProjectionWorker(standby_models, kafka_settings, group="dash", session_timeout_ms=6000)
    second_task = asyncio.create_task(second.run())
    try:
        # the group rebalances to include the second member: one owner, one standby
        await second.wait_for(lambda w: w.assignments > 0)
        await first.wait_for(lambda w: w.assignments > 1 or bool(w.assigned) != bool(second.assigned))
        owners = [w for w in (first, second) if w.assigned]
        assert len(owners) == 1 and len(owners[0].assigned) == PARTITIONS
        owner, standby = (first, second) if first.assigned else (second, first)
        await owner.stop()
        await (first_task if owner is first else second_task)

        await script_job(store, "j2")
        head = await relay_all(store, read_models, kafka_settings)
        await standby.wait_applied(head, timeout_s=40)
        assert len(standby.assigned) == PARTITIONS
    finally:
        await second.stop()
        await first.stop()
        await asyncio.gather(first_task, second_task)
        await standby_models.close()
    kafka_fed = {name: await kafka_read_models.dump(name) for name in PROJECTION_NAMES}
    assert kafka_fed == await store_fed_dump(store, tmp_path / "store-fed.db")
