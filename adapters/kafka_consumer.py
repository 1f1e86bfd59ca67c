"""Reading the topic as an integrator does: CloudEvents in per-key order, duplicates dropped.

The relay is at-least-once: after a broker outage it re-sends from its checkpoint, so a message
can appear twice (the re-sent copy always comes after the first one of the same key). Within a
key, positions only grow, so "skip a message whose position is not above the last one seen for
its key" drops exactly the duplicates.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from adapters.kafka_cloudevents import decode_value, header_value
from adapters.kafka_config import client_options
from config.settings import Settings

log = logging.getLogger(__name__)


class Deduper:
    """Per-key position high-water marks: `accept` is False for a message already seen."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def accept(self, key: str, position: int) -> bool:
        if position <= self._last.get(key, 0):
            return False
        self._last[key] = position
        return True

    def last(self, key: str) -> int:
        return self._last.get(key, 0)


@dataclass(frozen=True, slots=True)
class TopicEvent:
    """One decoded message: the CloudEvent plus where it sat on the topic."""

    partition: int
    offset: int
    key: str
    cloudevent: dict[str, Any]
    traceparent: str | None

    @property
    def position(self) -> int:
        return int(self.cloudevent["position"])

    def as_json(self, with_kafka: bool = False) -> dict[str, Any]:
        if not with_kafka:
            return self.cloudevent
        kafka = {"partition": self.partition, "offset": self.offset, "key": self.key, "traceparent": self.traceparent}
        return {"kafka": kafka, "event": self.cloudevent}


def decode_record(record: ConsumerRecord[bytes, bytes]) -> TopicEvent:
    if record.value is None:
        raise ValueError(f"empty message at {record.topic}[{record.partition}]@{record.offset}")
    ce = decode_value(record.value)
    key = record.key.decode() if record.key is not None else str(ce.get("subject", ""))
    return TopicEvent(record.partition, record.offset, key, ce, header_value(record.headers, "traceparent"))


async def consume_events(
    settings: Settings,
    *,
    from_beginning: bool = False,
    group: str | None = None,
    dedupe: bool = True,
    idle_timeout_s: float | None = None,
) -> AsyncIterator[TopicEvent]:
    """The topic's events, forever (or until nothing arrived for `idle_timeout_s`).

    Without `group`: every partition, no committed offsets (a read-only tap). With `group`:
    a consumer group member with auto-committed offsets (at-least-once for the integrator)."""
    topic = settings.kafka_topic
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=group,
        enable_auto_commit=group is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        max_poll_interval_ms=60_000,
    )
    try:
        await consumer.start()
        if group is None:
            partitions = await _partitions(consumer, topic)
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            if from_beginning:
                await consumer.seek_to_beginning(*tps)
            else:
                await consumer.seek_to_end(*tps)
        else:
            consumer.subscribe([topic])
        seen = Deduper()
        idle = 0.0
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                idle += 0.5
                if idle_timeout_s is not None and idle >= idle_timeout_s:
                    return
                continue
            idle = 0.0
            for records in batches.values():
                for record in records:
                    try:
                        event = decode_record(record)
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning("skipping %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
                        continue
                    if dedupe and not seen.accept(event.key, event.position):
                        continue
                    yield event
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        topics = await consumer.topics()  # refreshes metadata
        partitions = consumer.partitions_for_topic(topic) if topic in topics else None
    if not partitions:
        raise LookupError(f"topic {topic} does not exist (yet)")
    return set(partitions)
