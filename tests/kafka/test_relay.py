"""The relay publishes a scripted job's events: all of them, in per-key order, valid CloudEvents."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

from aiokafka import TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from adapters.kafka_cloudevents import decode_value, from_cloudevent
from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.kafka_schemas import export_schemas
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.ports import free_port
from config.settings import Settings
from persistence.chain import expected_hash
from persistence.records import NewEvent
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
    assert {m.value["type"] for m in messages} >= {"flp.JobCreated.v1", "flp.RoundCompleted.v2", "flp.JobCancelled.v1"}
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


# --- a round half acknowledged by a broker replaced in its middle (fake clients, no broker) ----


class FakeBroker:
    """One broker incarnation: partition -> the message values it holds, in offset order."""

    def __init__(self, logs: dict[int, list[bytes]] | None = None) -> None:
        self.logs = logs or {}


class FakeAddress:
    """What the relay's clients reach at the bootstrap address; `replace_after_next_ack` swaps
    in a fresh, empty broker right after the next batch is acknowledged (mid-round)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.replace_after_next_ack = False


class FakeBatch:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]) -> object:
        self.values.append(value)
        return object()

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, address: FakeAddress, partitions: int) -> None:
        self.address = address
        self.partitions = partitions

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> asyncio.Future[SimpleNamespace]:
        log = self.address.broker.logs.setdefault(partition, [])
        offset = len(log)
        log.extend(batch.values)
        if self.address.replace_after_next_ack:
            self.address.replace_after_next_ack = False
            self.address.broker = FakeBroker()
        acked: asyncio.Future[SimpleNamespace] = asyncio.get_running_loop().create_future()
        acked.set_result(SimpleNamespace(offset=offset))
        return acked


class FakeOffsets:
    def __init__(self, address: FakeAddress) -> None:
        self.address = address

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.address.broker.logs.get(tp.partition, [])) for tp in tps}


class FakeClientsRelay(KafkaRelay):
    def __init__(self, address: FakeAddress, store: SqliteEventStore, checkpoints: SqliteReadModelStore) -> None:
        config = RelayConfig(partitions=PARTITIONS, create_topic=False, backoff_initial_s=0.01)
        super().__init__(store, checkpoints, Settings(kafka_bootstrap_servers="fake:9092"), config)
        self.address = address

    def _producer(self) -> FakeProducer:
        return FakeProducer(self.address, self.config.partitions)

    def _offsets_reader(self) -> FakeOffsets:
        return FakeOffsets(self.address)


def streams_on_two_partitions() -> tuple[tuple[str, int], tuple[str, int]]:
    """Two stream ids the relay puts on different partitions (aiokafka's partitioner)."""
    partitioner = DefaultPartitioner()
    partitions = list(range(PARTITIONS))
    first = "client-a"
    first_partition = partitioner(first.encode(), partitions, partitions)
    for i in range(100):
        other = f"client-b{i}"
        other_partition = partitioner(other.encode(), partitions, partitions)
        if other_partition != first_partition:
            return (first, first_partition), (other, other_partition)
    raise AssertionError("no two streams on different partitions")


async def append_one(store: SqliteEventStore, stream_id: str) -> None:
    event = NewEvent(str(uuid.uuid4()), "ClientLeft", 1, {"client_id": stream_id, "reason": "test"}, {})
    await store.append(stream_id, [event], None)


def positions_on(broker: FakeBroker) -> dict[int, list[int]]:
    return {p: [decode_value(v)["position"] for v in values] for p, values in broker.logs.items()}


async def test_round_half_acknowledged_by_a_replaced_broker_is_sent_again(
    store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    """One round, two batches: the first is acknowledged at offset 3 by the old broker (which
    had 3 messages there), which is then replaced by an empty one; the second goes to an empty
    partition of the new broker (offset 0, as it would have been on the old one). No offset went
    back, yet the first batch is gone: the round must not be confirmed, and is sent again."""
    (stream_a, partition_a), (stream_b, partition_b) = streams_on_two_partitions()
    address = FakeAddress(FakeBroker({partition_a: [b"earlier"] * 3}))
    await append_one(store, stream_a)  # position 1, sent first
    await append_one(store, stream_b)  # position 2
    address.replace_after_next_ack = True
    relay = FakeClientsRelay(address, store, read_models)
    task = asyncio.create_task(relay.run())
    try:
        await relay.wait_published(2, timeout_s=10)
    finally:
        await relay.stop()
        await task
    assert relay.failures == 1 and "not on the broker any more" in (relay.last_error or "")
    # the new broker has both: position 2 twice (at least once: its first copy was on it already)
    assert positions_on(address.broker) == {partition_a: [1], partition_b: [2, 2]}


async def test_first_writes_to_empty_partitions_are_confirmed_when_the_broker_kept_them(
    store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    (stream_a, partition_a), (stream_b, partition_b) = streams_on_two_partitions()
    address = FakeAddress(FakeBroker())
    await append_one(store, stream_a)
    await append_one(store, stream_b)
    relay = FakeClientsRelay(address, store, read_models)
    task = asyncio.create_task(relay.run())
    try:
        await relay.wait_published(2, timeout_s=10)
    finally:
        await relay.stop()
        await task
    assert (relay.failures, relay.rounds) == (0, 1)
    assert positions_on(address.broker) == {partition_a: [1], partition_b: [2]}


async def test_stop_cuts_the_backoff_short_and_health_shows_the_failure(
    tmp_path: Path, store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    """Nothing listens on the address: every session fails at once; with a 60 s backoff, stop()
    must still end run() right away, and info() names the failure meanwhile."""
    settings = Settings(data_dir=tmp_path / "flp", kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    relay = KafkaRelay(store, read_models, settings, RelayConfig(partitions=PARTITIONS, backoff_initial_s=60.0))
    task = asyncio.create_task(relay.run())
    await relay.wait_for(lambda r: r.failures >= 1, timeout_s=20)
    info = relay.info()
    assert (info["state"], info["failures"]) == ("retrying", 1) and "KafkaConnectionError" in (info["last_error"] or "")
    await relay.stop()
    await asyncio.wait_for(task, 5)
    assert (relay.state, relay.failures) == ("stopped", 1)  # no second attempt after stop()
