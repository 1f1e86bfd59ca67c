"""The Kafka relay: the event store's global feed -> the integrator topic (the store is the outbox).

How it keeps its promises
- Never a second write: it reads `store.subscribe(checkpoint)` and publishes what is stored.
- Per-key order: key = stream id, partition = aiokafka's `DefaultPartitioner` (murmur2, the
  Java client's default) over a fixed partition count (`partitions`, not the topic's current
  one), so a key never moves. Events go out in *rounds*: at most one record batch per
  partition, all sent together, all awaited. A round never starts before the previous one was
  acknowledged, so a partition can never hold a later event whose predecessor failed.
- Nothing lost: the checkpoint (`kafka_relay` in the read-model store) moves only after every
  batch of a round was acknowledged with acks=all. Any failure (broker down, stalled, timed
  out, replaced) ends the session; the relay backs off (tenacity: exponential with jitter,
  interrupted by `stop()`), reconnects and re-sends from the checkpoint. Duplicates are
  possible and expected; consumers dedupe by position.
- A broker that lost acknowledged messages (a fresh, empty broker on the same address) shows
  as a partition offset going backwards. A round that wrote to a partition that was empty
  before (whose offset cannot show that) is confirmed only once the topic's end offsets show
  every batch of the round is still there, so a round half acknowledged by a broker that was
  replaced in its middle is caught too. Either way the round is not confirmed and is re-sent
  from the checkpoint, so every event not yet checkpointed ends up on the new broker's topic.
- The producer is not idempotent (tansu rejects InitProducerId; dedupe is the consumer's job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from opentelemetry.trace import SpanKind
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_not_exception_type,
    wait_exponential_jitter,
)

from adapters.kafka_cloudevents import DEFAULT_SOURCE, MessageMapper
from adapters.kafka_config import DEFAULT_PARTITIONS, client_options
from adapters.kafka_topic import ensure_topic
from config.settings import Settings
from persistence.ports import EventStore, FencedOut, Ownership
from persistence.records import RecordedEvent
from projections.ports import ReadModelStore
from telemetry import metrics, tracing

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "kafka_relay"


class RelayError(Exception):
    """A round could not be confirmed; the relay re-sends from its checkpoint."""


@dataclass(frozen=True, slots=True)
class RelayConfig:
    topic: str = "flp.events"
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1  # only used when the relay has to create the topic
    source: str = DEFAULT_SOURCE  # CloudEvents `source`
    checkpoint_name: str = CHECKPOINT_NAME
    read_batch: int = 5000  # events read from the store at a time
    max_batch_bytes: int = 512 * 1024  # per partition per round (Kafka's default cap is 1 MB)
    request_timeout_ms: int = 10_000  # a round not acknowledged by then fails and is re-sent
    # waits after failures: backoff_initial_s * 2**(n-1) plus up to backoff_initial_s of jitter,
    # at most backoff_max_s (tenacity's wait_exponential_jitter)
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    create_topic: bool = True

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RelayConfig:
        """Topic, partitions and replication factor from FLP_KAFKA_TOPIC, FLP_KAFKA_PARTITIONS and
        FLP_KAFKA_REPLICATION_FACTOR; `overrides` replace any field."""
        values: dict[str, Any] = {
            "topic": settings.kafka_topic,
            "partitions": settings.kafka_partitions,
            "replication_factor": settings.kafka_replication_factor,
        }
        values.update(overrides)
        return cls(**values)


class KafkaRelay:
    """Long-running service: `await run()` until `await stop()`; `await lag()` for health."""

    def __init__(
        self,
        store: EventStore,
        checkpoints: ReadModelStore,
        settings: Settings,
        config: RelayConfig | None = None,
        on_published: Callable[[Sequence[RecordedEvent]], None] | None = None,
    ) -> None:
        self.store = store
        self.checkpoints = checkpoints
        self.settings = settings
        self.config = config or RelayConfig.from_settings(settings)
        self.on_published = on_published  # called with each acknowledged round (bench, tests)
        self.ownership = Ownership()  # the relay lease, when replicas share the store (flp.exclusive)
        self.state = "idle"
        self.published_position: int | None = None  # last checkpointed position
        self.acknowledged_position: int | None = None  # last position the broker acknowledged
        self.head_position = 0  # store head as last seen
        self.failures = 0
        self.last_error: str | None = None
        self.rounds = 0  # rounds acknowledged
        self.rounds_sent = 0  # rounds put on the wire, acknowledged or not (tests wait on it)
        self.events_sent = 0
        self._log_end: dict[int, int] = {}  # partition -> offset after our last acknowledged batch
        self._keys: dict[str, tuple[int, bytes]] = {}  # stream id -> (partition, key bytes)
        self._partitioner = DefaultPartitioner()
        self._partitions = list(range(self.config.partitions))  # fixed: a key never moves
        self._messages = MessageMapper(self.config.source)
        self._stopping = asyncio.Event()
        self._changed = asyncio.Condition()

    # --- service API -------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish until `stop()`: after any failure, back off and reconnect (never skip)."""
        self._stopping.clear()
        with contextlib.suppress(Exception):  # for info() before the first session connects
            self.published_position = await self.checkpoint()
        monitor = asyncio.create_task(self._watch_head(), name="kafka-relay-head")
        try:
            await self._reconnecting()(self._session_unless_stopping)
        finally:
            monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await monitor
            self.state = "stopped"

    async def stop(self) -> None:
        """Ask `run()` to return after the round in flight (it is awaited, then checkpointed)."""
        self._stopping.set()

    async def wait_for(self, predicate: Callable[[KafkaRelay], bool], timeout_s: float = 30.0) -> None:
        """Block until `predicate(relay)` holds; re-checked when a round is sent, after every
        acknowledged round's checkpoint and after every failure."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def wait_published(self, position: int, timeout_s: float = 30.0) -> None:
        await self.wait_for(lambda r: (r.published_position or 0) >= position, timeout_s)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def checkpoint(self) -> int:
        return await self.checkpoints.get_checkpoint(self.config.checkpoint_name)

    async def lag(self) -> int:
        """Positions in the store not yet confirmed on the topic."""
        self.head_position = await self.store.head_position()
        published = self.published_position
        if published is None:
            published = await self.checkpoint()
        return max(0, self.head_position - published)

    def info(self) -> dict[str, Any]:
        """Cheap, synchronous status for health output (head refreshed about every second)."""
        published = self.published_position or 0
        return {
            "state": self.state,
            "topic": self.config.topic,
            "published_position": published,
            "head_position": self.head_position,
            "lag": max(0, self.head_position - published),
            "failures": self.failures,
            "last_error": self.last_error,
        }

    # --- internals ---------------------------------------------------------------------------

    def _reconnecting(self) -> AsyncRetrying:
        """Sessions until one returns (only when stopping): broker, network or store trouble is
        retried forever, cancellation is not; `stop()` cuts a wait short and ends the retries."""
        return AsyncRetrying(
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(FencedOut),
            wait=wait_exponential_jitter(
                multiplier=self.config.backoff_initial_s,
                max=self.config.backoff_max_s,
                jitter=self.config.backoff_initial_s,
            ),
            stop=lambda _: self._stopping.is_set(),
            sleep=self._pause,
            after=self._failed,
            before_sleep=self._log_retry,
            retry_error_callback=lambda _: None,  # stopping after a failure: run() just returns
        )

    async def _session_unless_stopping(self) -> None:
        if not self._stopping.is_set():  # stop() may have come during the wait before this attempt
            await self._session()

    async def _failed(self, attempt: RetryCallState) -> None:
        """After every failed session (health shows it at once, tests can wait for it)."""
        assert attempt.outcome is not None
        exc = attempt.outcome.exception()
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.state = "retrying"
        await self._notify()

    def _log_retry(self, attempt: RetryCallState) -> None:
        wait_s = attempt.next_action.sleep if attempt.next_action is not None else 0.0
        log.warning("kafka relay: %s; retrying in %.1fs", self.last_error, wait_s)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _watch_head(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.head_position = max(self.head_position, await self.store.head_position())
            await asyncio.sleep(1.0)

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **client_options(self.settings),
            acks="all",
            enable_idempotence=False,
            max_batch_size=self.config.max_batch_bytes,
            max_request_size=self.config.max_batch_bytes,
            linger_ms=0,
            request_timeout_ms=self.config.request_timeout_ms,
            retry_backoff_ms=100,
        )

    def _offsets_reader(self) -> AIOKafkaConsumer:
        """A consumer that never subscribes: only the topic's end offsets, on their own connection."""
        return AIOKafkaConsumer(
            **client_options(self.settings),
            enable_auto_commit=False,
            request_timeout_ms=self.config.request_timeout_ms,
        )

    async def _session(self) -> None:
        self.state = "connecting"
        producer = self._producer()
        offsets = self._offsets_reader()
        try:
            await producer.start()
            if self.config.create_topic:
                await ensure_topic(
                    client_options(self.settings),
                    self.config.topic,
                    self.config.partitions,
                    self.config.replication_factor,
                    self.config.request_timeout_ms,
                )
            await self._check_partitions(producer)
            await offsets.start()
            await self._learn_log_end(offsets)
            position = await self.checkpoint()
            self.published_position = position
            self.state = "running"
            feed = self.store.subscribe(position, self.config.read_batch)
            try:
                await self._pump(producer, offsets, feed)
            finally:
                await feed.aclose()  # type: ignore[attr-defined]
        finally:
            # Every round is awaited before the next starts, so nothing is pending here
            # except after cancellation; bound the flush so a dead broker cannot hang us.
            timeout_s = self.config.request_timeout_ms / 1000
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout_s)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(offsets.stop(), timeout_s)

    async def _check_partitions(self, producer: AIOKafkaProducer) -> None:
        available = await producer.partitions_for(self.config.topic)
        missing = set(range(self.config.partitions)) - set(available)
        if missing:
            raise RelayError(
                f"topic {self.config.topic} has partitions {sorted(available)}; the relay is "
                f"configured for {self.config.partitions} (keys must not move between partitions)"
            )

    async def _learn_log_end(self, offsets: AIOKafkaConsumer) -> None:
        """Seed the per-partition offsets we expect, so a broker that comes back empty in the
        middle of the next round is noticed (its offsets go back) even for partitions this
        process has not written yet."""
        tps = [TopicPartition(self.config.topic, p) for p in self._partitions]
        ends: dict[TopicPartition, int] = await offsets.end_offsets(tps)
        for tp, end in ends.items():
            known = self._log_end.get(tp.partition)
            if known is not None and end < known:
                # an empty partition we had written to: the broker lost acknowledged messages;
                # otherwise it may just under-report its log end (tansu reports last batch + 1)
                log.log(
                    logging.WARNING if end == 0 else logging.INFO,
                    "kafka relay: partition %d ends at offset %d, below the %d it had reached",
                    tp.partition,
                    end,
                    known,
                )
            self._log_end[tp.partition] = end

    async def _pump(
        self, producer: AIOKafkaProducer, offsets: AIOKafkaConsumer, feed: AsyncIterator[list[RecordedEvent]]
    ) -> None:
        pending: list[RecordedEvent] = []
        next_batch: asyncio.Task[list[RecordedEvent]] | None = None
        stop_wait = asyncio.create_task(self._stopping.wait())
        saving: asyncio.Task[None] | None = None
        try:
            while True:
                if not pending:
                    if next_batch is None:
                        next_batch = asyncio.create_task(_next(feed))
                    ready, _ = await asyncio.wait({next_batch, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if next_batch not in ready:
                        return  # stopping while idle
                    pending, next_batch = next_batch.result(), None
                elif self._stopping.is_set():
                    return
                # read the next store batch while this round is on the wire
                if next_batch is None:
                    next_batch = asyncio.create_task(_next(feed))
                done, pending = await self._round(producer, offsets, pending)
                # checkpoint writes are sequential and overlap the next round, never run ahead of acks
                if saving is not None:
                    await saving
                saving = asyncio.create_task(self._save_checkpoint(done[-1].position))
        finally:
            stop_wait.cancel()
            if next_batch is not None:
                next_batch.cancel()
                with contextlib.suppress(BaseException):
                    await next_batch
            if saving is not None:
                await saving  # a failed write surfaces here: the session ends and re-sends

    def _key(self, event: RecordedEvent) -> tuple[int, bytes]:
        """(partition, key bytes) of an event's stream, cached: murmur2 in Python is not free."""
        found = self._keys.get(event.stream_id)
        if found is None:
            key = self._messages.key(event)
            partition: int = self._partitioner(key, self._partitions, self._partitions)
            found = (partition, key)
            if len(self._keys) > 100_000:
                self._keys.clear()
            self._keys[event.stream_id] = found
        return found

    async def _round(
        self, producer: AIOKafkaProducer, offsets: AIOKafkaConsumer, events: list[RecordedEvent]
    ) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
        """`_send_round` in a `kafka.publish` span (messaging semantic conventions), a child of
        the first event's command and linked to the others'; its latency and count measured."""
        first = events[0].metadata.get("traceparent") if events else None
        with tracing.tracer().start_as_current_span(
            "kafka.publish",
            context=tracing.context_from(first if isinstance(first, str) else None),
            kind=SpanKind.PRODUCER,
            links=tracing.links(e.metadata for e in events[1:]),
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.operation.name": "publish",
                "messaging.destination.name": self.config.topic,
                "flp.position.first": events[0].position if events else 0,
            },
        ) as span:
            started = time.perf_counter()
            done, rest = await self._send_round(producer, offsets, events)
            metrics.RELAY_PUBLISH_SECONDS.observe(time.perf_counter() - started)
            metrics.RELAY_PUBLISHED.inc(len(done))
            span.set_attribute("messaging.batch.message_count", len(done))
            if done:
                span.set_attribute("flp.position.last", done[-1].position)
            return done, rest

    async def _send_round(
        self, producer: AIOKafkaProducer, offsets: AIOKafkaConsumer, events: list[RecordedEvent]
    ) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
        """Publish a prefix of `events` (one batch per partition); (acknowledged, the rest)."""
        builders: dict[int, Any] = {}
        counts: dict[int, int] = {}
        taken = 0
        messages = self._messages
        for event in events:
            partition, key = self._key(event)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
                counts[partition] = 0
            appended = builder.append(
                key=key, value=messages.value(event), timestamp=None, headers=messages.headers(event)
            )
            if appended is None:  # this partition's batch is full: the round ends here
                if counts[partition] == 0:
                    raise RelayError(f"event at position {event.position} exceeds max_batch_bytes")
                break
            counts[partition] += 1
            taken += 1
        self.rounds_sent += 1
        await self._notify()
        futures: dict[int, asyncio.Future[Any]] = {}
        for partition, builder in builders.items():
            builder.close()
            if counts[partition]:
                futures[partition] = await producer.send_batch(builder, self.config.topic, partition=partition)
        results = await asyncio.gather(*futures.values(), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        regressed: list[str] = []
        base_offsets: dict[int, int] = {}
        unproven = False  # a batch whose offset cannot show it went where the earlier ones are
        for (partition, _), result in zip(futures.items(), results, strict=True):
            if isinstance(result, BaseException):
                self._log_end.pop(partition, None)
                continue
            expected = self._log_end.get(partition)
            if expected is not None and result.offset < expected:
                regressed.append(f"{partition}: {expected} -> {result.offset}")
            unproven = unproven or not expected
            base_offsets[partition] = result.offset
            self._log_end[partition] = result.offset + counts[partition]
        if errors:
            raise RelayError(f"{len(errors)} of {len(futures)} batches failed: {errors[0]!r}")
        if regressed:
            raise RelayError(f"broker lost acknowledged messages (offsets went back: {', '.join(regressed)})")
        if unproven:
            await self._confirm_still_there(offsets, base_offsets)
        done = events[:taken]
        self.acknowledged_position = done[-1].position
        self.head_position = max(self.head_position, events[-1].position)
        self.rounds += 1
        self.events_sent += taken
        if self.on_published is not None:
            self.on_published(done)  # acknowledged; the checkpoint write follows
        return done, events[taken:]

    async def _confirm_still_there(self, offsets: AIOKafkaConsumer, base_offsets: dict[int, int]) -> None:
        """A batch written to a partition that was empty got offset 0 from whichever broker took
        it: the old one, or a fresh one that replaced it in the middle of the round, while the
        other batches were acknowledged by the old one (and are gone with it). Confirm the round
        only if the broker serving the topic now holds every batch of it; this costs one
        ListOffsets request, only for rounds that wrote to an empty partition."""
        topic = self.config.topic
        ends: dict[TopicPartition, int] = await offsets.end_offsets([TopicPartition(topic, p) for p in base_offsets])
        missing = [
            f"{p}: batch at {offset}, log ends at {ends.get(TopicPartition(topic, p), 0)}"
            for p, offset in base_offsets.items()
            if ends.get(TopicPartition(topic, p), 0) <= offset
        ]
        if missing:
            raise RelayError(f"acknowledged batches are not on the broker any more ({', '.join(missing)})")

    async def _save_checkpoint(self, position: int) -> None:
        await self.checkpoints.set_checkpoint(self.config.checkpoint_name, position, self.ownership.token)
        self.published_position = position
        await self._notify()


async def _next(feed: AsyncIterator[list[RecordedEvent]]) -> list[RecordedEvent]:
    return await anext(feed)
