"""Broker outage drills while events keep being appended: a stall (SIGSTOP until the relay's
request times out, about 10 s) and replacement by a fresh, empty broker on the same address.
Nothing the relay had not checkpointed may be missing afterwards, per-key order holds and a
deduping consumer sees every event once."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from adapters.kafka_cloudevents import from_cloudevent
from adapters.kafka_consumer import Deduper
from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from persistence.records import NewEvent, RecordedEvent
from tests.kafka.conftest import PARTITIONS, Message, positions_cover, read_topic

STREAMS = 17


class Appender:
    """Appends 5 events every 10 ms to one of STREAMS streams, round robin, until stopped."""

    def __init__(self, store: SqliteEventStore) -> None:
        self.store = store
        self.event_ids: list[str] = []
        self._stop = asyncio.Event()
        self._appended = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            n = i % STREAMS
            events = [
                NewEvent(str(uuid.uuid4()), "ClientLeft", 1, {"client_id": f"s{n}", "reason": f"r{i}.{k}"}, {})
                for k in range(5)
            ]
            await self.store.append(f"client-s{n}", events, None)
            async with self._appended:
                self.event_ids.extend(e.event_id for e in events)
                self._appended.notify_all()
            i += 1
            await asyncio.sleep(0.01)

    async def wait_appended(self, count: int, timeout_s: float = 30.0) -> None:
        async with asyncio.timeout(timeout_s), self._appended:
            await self._appended.wait_for(lambda: len(self.event_ids) >= count)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


@pytest.fixture
async def relay(
    kafka_settings: Settings, store: SqliteEventStore, read_models: SqliteReadModelStore
) -> AsyncIterator[KafkaRelay]:
    relay = KafkaRelay(store, read_models, kafka_settings, RelayConfig(partitions=PARTITIONS, backoff_max_s=1.0))
    task = asyncio.create_task(relay.run())
    yield relay
    await relay.stop()
    await asyncio.wait_for(task, 30)


async def finish(appender: Appender, relay: KafkaRelay, store: SqliteEventStore) -> list[RecordedEvent]:
    """Stop appending, wait for the relay to confirm everything, check the store lost nothing."""
    await appender.stop()
    head = await store.head_position()
    await relay.wait_published(head, timeout_s=60)
    stored = await store.read_all(0, 1_000_000)
    assert [e.position for e in stored] == list(range(1, head + 1))
    assert [e.event_id for e in stored] == appender.event_ids
    return stored


def check_delivery(messages: list[Message], stored: list[RecordedEvent], required: set[int]) -> None:
    """A deduping consumer (in partition order) gets each event once, in stream order, and
    every required position."""
    by_position = {e.position: e for e in stored}
    dedupe = Deduper()
    delivered = [m for m in messages if dedupe.accept(m.key, m.position)]
    positions = [m.position for m in delivered]
    assert len(positions) == len(set(positions)), "an event was delivered twice"
    missing = required - set(positions)
    assert not missing, f"{len(missing)} events missing, e.g. {sorted(missing)[:5]}"
    versions: dict[str, list[int]] = defaultdict(list)
    for m in delivered:
        assert from_cloudevent(m.value) == by_position[m.position]
        versions[m.key].append(m.value["streamversion"])
    final = {e.stream_id: e.version for e in stored}
    for key, seen in versions.items():
        # gap-free and ordered from the first delivered version to the stream's last one
        assert seen == list(range(seen[0], final[key] + 1)), key


async def test_broker_stall_sigstop(broker: TansuBroker, relay: KafkaRelay, store: SqliteEventStore) -> None:
    appender = Appender(store)
    appender.start()
    await relay.wait_published(200)
    failures = relay.failures
    broker.pause()
    try:
        # the drill: the broker stays stalled, while appends continue, until the relay gives up
        # on it (its round times out after request_timeout_ms) and fails the session
        await relay.wait_for(lambda r: r.failures > failures, timeout_s=60)
        appended_during_stall = len(appender.event_ids)
    finally:
        broker.resume()
    await relay.wait_published(appended_during_stall, timeout_s=60)
    stored = await finish(appender, relay, store)
    head = stored[-1].position
    messages = await read_topic(broker.bootstrap_servers, positions_cover(set(range(1, head + 1))))
    check_delivery(messages, stored, set(range(1, head + 1)))
    assert relay.state == "running"


async def test_broker_replaced_by_empty_one(
    broker: TansuBroker, relay: KafkaRelay, store: SqliteEventStore, read_models: SqliteReadModelStore
) -> None:
    appender = Appender(store)
    appender.start()
    await relay.wait_published(200)
    failures = relay.failures
    broker.kill()
    sent = relay.rounds_sent
    # Acknowledgements already on the wire are processed and checkpointed; after that nothing
    # more can be: either a round sent after the kill waits for an acknowledgement that cannot
    # come, or the session has failed.
    await relay.wait_for(
        lambda r: (r.rounds_sent > sent and r.published_position == r.acknowledged_position) or r.failures > failures
    )
    checkpointed = await read_models.get_checkpoint("kafka_relay")
    assert checkpointed == relay.published_position
    await appender.wait_appended(len(appender.event_ids) + 200)  # the broker stays away meanwhile
    assert await read_models.get_checkpoint("kafka_relay") == checkpointed  # no broker, no progress
    broker.start()  # fresh and empty, same address
    stored = await finish(appender, relay, store)
    head = stored[-1].position
    assert head > checkpointed + 200  # the drill covered events appended while the broker was away
    required = set(range(checkpointed + 1, head + 1))
    messages = await read_topic(broker.bootstrap_servers, positions_cover(required))
    check_delivery(messages, stored, required)
    assert relay.failures >= 1
