"""A projection worker fed from the Kafka topic instead of the event store.

Projections are defined over the global order (position), which spans partitions. The worker
reads every partition (one consumer group; `SingleOwnerAssignor` gives all partitions to one
member, others stand by), converts each CloudEvent back to the exact RecordedEvent, and applies
events strictly in position order: positions are gap-free, so it buffers what arrives early and
releases the contiguous run after its checkpoint. Duplicates (positions at or below the
checkpoint, or already buffered) are dropped. Offsets are committed only after the read-model
writes (which carry the projections' checkpoints), and never past a record still buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind

from adapters.kafka_assignor import SingleOwnerAssignor
from adapters.kafka_cloudevents import decode_value, from_cloudevent
from adapters.kafka_config import client_options
from config.settings import Settings
from persistence.records import RecordedEvent
from projections.ports import ChangeListener, ReadModelStore
from projections.projection import Projection
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from telemetry import tracing

log = logging.getLogger(__name__)

DEFAULT_GROUP = "flp-projections"
APPLY_CHUNK = 5000


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: KafkaProjectionWorker, consumer: AIOKafkaConsumer) -> None:
        self.worker = worker
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.worker._forget(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker._assigned(self.consumer, assigned)


class KafkaProjectionWorker:
    """`await run()` until `await stop()`; `await wait_applied(position)` for tests and health."""

    def __init__(
        self,
        read_models: ReadModelStore,
        settings: Settings,
        *,
        group: str = DEFAULT_GROUP,
        projections: Sequence[Projection] | None = None,
        listeners: Sequence[ChangeListener] = (),
        from_beginning: bool = False,
        max_buffered_per_partition: int = 50_000,
        stall_warning_s: float = 10.0,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.read_models = read_models
        self.settings = settings
        self.group = group
        self.runner = ProjectionRunner(read_models, projections or all_projections(), listeners)
        self.from_beginning = from_beginning
        self.max_buffered = max_buffered_per_partition
        self.stall_warning_s = stall_warning_s
        self.session_timeout_ms = session_timeout_ms
        self.applied_to = 0  # every projection has applied everything up to here
        self.duplicates = 0
        self.rejected = 0  # messages that are not flp CloudEvents
        self.assigned: set[TopicPartition] = set()
        self.assignments = 0  # group assignments received (an empty one = standing by)
        self._buffer: dict[int, tuple[RecordedEvent, TopicPartition, int]] = {}
        self._buffered: Counter[TopicPartition] = Counter()
        self._consumed: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self._committed: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._stopping = asyncio.Event()
        self._progress = asyncio.Condition()
        self._stalled_since: float | None = None

    async def run(self) -> None:
        self._stopping.clear()
        self.applied_to = await self.runner.low_checkpoint()
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(SingleOwnerAssignor,),
            max_poll_interval_ms=300_000,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 3),
        )
        try:
            await consumer.start()
            consumer.subscribe([self.settings.kafka_topic], listener=_Rebalance(self, consumer))
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=APPLY_CHUNK)
                if batches:
                    await self._absorb(consumer, batches)
                self._warn_if_stalled()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()

    async def wait_applied(self, position: int, timeout_s: float = 30.0) -> None:
        await self.wait_for(lambda w: w.applied_to >= position, timeout_s)

    async def wait_for(self, predicate: Callable[[KafkaProjectionWorker], bool], timeout_s: float = 30.0) -> None:
        """Block until `predicate(worker)` holds; re-checked after each apply and assignment."""
        async with asyncio.timeout(timeout_s), self._progress:
            await self._progress.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    # --- consumer group ----------------------------------------------------------------------

    def _forget(self, revoked: set[TopicPartition]) -> None:
        for position, (_, tp, _) in list(self._buffer.items()):
            if tp in revoked:
                del self._buffer[position]
        for tp in revoked:
            self._buffered.pop(tp, None)
            self._consumed.pop(tp, None)
            self._committed.pop(tp, None)
            self._paused.discard(tp)
        self.assigned -= revoked

    async def _assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self.assignments += 1
        if not assigned:
            log.info("projection worker: standing by (another member of %s owns the topic)", self.group)
            await self._notify()
            return
        self.applied_to = await self.runner.low_checkpoint()
        if self.from_beginning or self.applied_to == 0:
            # fresh read models (or asked to): committed offsets would skip what they never saw
            await consumer.seek_to_beginning(*assigned)
        log.info("projection worker: owns %d partitions, projections at position %d", len(assigned), self.applied_to)
        await self._notify()

    # --- the merge ---------------------------------------------------------------------------

    async def _absorb(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        for tp, records in batches.items():
            if tp not in self.assigned:
                continue
            for record in records:
                try:
                    if record.value is None:
                        raise ValueError("empty message")
                    event = from_cloudevent(decode_value(record.value))
                except (ValueError, KeyError, TypeError) as exc:  # not an flp event: never blocks the order
                    self.rejected += 1
                    log.warning("projection worker: skipping %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc)
                    continue
                if event.position <= self.applied_to or event.position in self._buffer:
                    self.duplicates += 1
                    continue
                self._buffer[event.position] = (event, tp, record.offset)
                self._buffered[tp] += 1
            if records:
                self._consumed[tp] = records[-1].offset + 1
        ready: list[RecordedEvent] = []
        while (entry := self._buffer.pop(self.applied_to + len(ready) + 1, None)) is not None:
            event, tp, _ = entry
            self._buffered[tp] -= 1
            ready.append(event)
        for start in range(0, len(ready), APPLY_CHUNK):
            chunk = ready[start : start + APPLY_CHUNK]
            first = chunk[0].metadata.get("traceparent")
            with tracing.tracer().start_as_current_span(
                "kafka.consume",
                context=tracing.context_from(first if isinstance(first, str) else None),
                kind=SpanKind.CONSUMER,
                links=tracing.links(e.metadata for e in chunk[1:]),
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": self.settings.kafka_topic,
                    "messaging.consumer.group.name": self.group,
                    "messaging.batch.message_count": len(chunk),
                },
            ):
                await self.runner.apply(chunk)
            async with self._progress:
                self.applied_to = chunk[-1].position
                self._progress.notify_all()
        if ready:
            self._stalled_since = None
        elif self._buffer and self._stalled_since is None:
            self._stalled_since = time.monotonic()
        await self._commit(consumer)
        self._throttle(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit, per partition, up to the first record not yet applied."""
        pending: dict[TopicPartition, int] = {}
        for _, tp, offset in self._buffer.values():
            pending[tp] = min(offset, pending.get(tp, offset))
        offsets: dict[TopicPartition, int] = {}
        for tp, consumed in self._consumed.items():
            target = pending.get(tp, consumed)
            if target > self._committed.get(tp, -1):
                offsets[tp] = target
        if offsets:
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:  # e.g. a rebalance: the next owner re-reads, duplicates are skipped
                log.warning("projection worker: offset commit failed (%s); will retry", exc)
                return
            self._committed.update(offsets)

    def _throttle(self, consumer: AIOKafkaConsumer) -> None:
        """Stop fetching partitions far ahead of the global order (bounded memory); the
        partition holding the next position never has anything buffered, so it keeps going."""
        for tp in self.assigned:
            count = self._buffered.get(tp, 0)
            if count > self.max_buffered and tp not in self._paused:
                consumer.pause(tp)
                self._paused.add(tp)
            elif count <= self.max_buffered // 2 and tp in self._paused:
                consumer.resume(tp)
                self._paused.discard(tp)

    def _warn_if_stalled(self) -> None:
        if self._stalled_since is None or time.monotonic() - self._stalled_since < self.stall_warning_s:
            return
        log.warning(
            "projection worker: waiting for position %d, %d later events buffered; it is not on the "
            "partitions this worker owns (%d): lost with a broker, or the group is split. Rebuild "
            "the read models from the store if it does not arrive.",
            self.applied_to + 1,
            len(self._buffer),
            len(self.assigned),
        )
        self._stalled_since = time.monotonic()
