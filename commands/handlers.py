"""Command handlers: load the aggregate's stream, decide, append with the expected version."""

from __future__ import annotations

import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from domain import client, fleet, training_job
from domain.commands import ClientCommand, JobCommand
from domain.errors import DomainError
from domain.events import Event
from persistence.ports import AppendResult, ConcurrencyError, EventStore, IdempotencyKeyReused
from persistence.records import NewEvent, RecordedEvent
from telemetry import metrics, tracing

S = TypeVar("S")
C = TypeVar("C")
MAX_RETRIES = 5


@dataclass(frozen=True, slots=True)
class CommandContext:
    """Who asked and why: stored in every resulting event's metadata."""

    actor: str = "system"
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandResult:
    stream_id: str
    version: int
    events: list[RecordedEvent]
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Aggregate(Generic[C, S]):
    name: str
    stream_id: Callable[[str], str]
    initial: S
    decide: Callable[[C, S], list[Event]]
    evolve: Callable[[S, Event], S]


TRAINING_JOB: Aggregate[JobCommand, training_job.JobState] = Aggregate(
    "training_job", training_job.stream_id, training_job.INITIAL, training_job.decide, training_job.evolve
)
CLIENT: Aggregate[ClientCommand, client.ClientState] = Aggregate(
    "client", client.stream_id, client.INITIAL, client.decide, client.evolve
)

FLEET: Aggregate[fleet.FleetCommand, fleet.FleetState] = Aggregate(
    "fleet", fleet.stream_id, fleet.INITIAL, fleet.decide, fleet.evolve
)


def fold(aggregate: Aggregate[Any, S], events: Sequence[RecordedEvent], state: S | None = None) -> S:
    current = aggregate.initial if state is None else state
    for recorded in events:
        current = aggregate.evolve(current, recorded.to_event())
    return current


class CommandHandler(Generic[C, S]):
    """Executes commands against one aggregate type, with a state cache.

    `execute` decides on the cached state when it has one, without asking the store for the
    stream's version first: the append carries the version the decision was made on, and the
    store refuses it if the stream moved (another process wrote), after which the handler
    decides again on the stored state. A stream missing from the cache is taken for a new one
    (version 0, the initial state) on the first attempt, the same way. A refusal or "nothing to
    do" on cached state is also checked against the stored state before it is answered. `load`
    always catches up with the store."""

    def __init__(self, store: EventStore, aggregate: Aggregate[C, S], cache_size: int = 10_000) -> None:
        self.store = store
        self.aggregate = aggregate
        self._cache: OrderedDict[str, tuple[int, S]] = OrderedDict()
        self._cache_size = cache_size

    async def load(self, entity_id: str) -> tuple[int, S]:
        """Current (version, state): the cached state, caught up to the stored version."""
        stream = self.aggregate.stream_id(entity_id)
        stored = await self.store.stream_version(stream)
        version, state = self._cache.get(stream, (0, self.aggregate.initial))
        if version > stored:  # the cache is ahead of what is stored: distrust it
            version, state = 0, self.aggregate.initial
        if stored > version:
            events = await self.store.read_stream(stream, from_version=version + 1)
            state = fold(self.aggregate, events, state)
            version = events[-1].version if events else version
        self._remember(stream, version, state)
        return version, state

    async def state_at(self, entity_id: str, version: int | None = None) -> tuple[int, S]:
        """State as of a version (time travel), folded from the stored events."""
        events = await self.store.read_stream(self.aggregate.stream_id(entity_id), 1, version)
        return (events[-1].version if events else 0), fold(self.aggregate, events)

    async def execute(
        self,
        entity_id: str,
        command: C,
        ctx: CommandContext | None = None,
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult:
        """Decide and append. With `expected_version` a moved stream raises ConcurrencyError;
        without it, a concurrent change makes the handler reload and decide again.

        With `idempotency_key`, the same key always gets the first answer: the key is checked
        before deciding, by the store inside its serialised write, and again whenever the
        decision is not an append (a concurrent twin may have appended meanwhile, so that this
        one now sees "already exists", nothing to do, or a moved version)."""
        name = type(command).__name__
        stream = self.aggregate.stream_id(entity_id)
        recording = tracing.recording()
        with (
            tracing.tracer().start_as_current_span(
                f"command {name}",
                context=tracing.parent(ctx.traceparent if ctx is not None else None),
                attributes={"flp.stream_id": stream, "flp.command": name},
            )
            if recording
            else tracing.NO_SPAN
        ) as span:
            if expected_version is not None:
                span.set_attribute("flp.expected_version", expected_version)
            try:
                result = await self._execute(entity_id, command, ctx, expected_version, idempotency_key)
            except DomainError:
                metrics.COMMANDS.labels(name, "rule_broken").inc()
                span.set_attribute("flp.outcome", "rule_broken")
                raise
            except ConcurrencyError:
                metrics.COMMANDS.labels(name, "conflict").inc()
                span.set_attribute("flp.outcome", "conflict")
                raise
            except BaseException:
                metrics.COMMANDS.labels(name, "error").inc()
                raise
            outcome = "idempotent_replay" if result.duplicate else ("appended" if result.events else "nothing_to_do")
            metrics.child(metrics.COMMANDS, name, outcome).inc()
            span.set_attribute("flp.outcome", outcome)
            span.set_attribute("flp.version", result.version)
            return result

    async def _execute(
        self,
        entity_id: str,
        command: C,
        ctx: CommandContext | None,
        expected_version: int | None,
        idempotency_key: str | None,
    ) -> CommandResult:
        ctx = ctx or CommandContext()
        stream = self.aggregate.stream_id(entity_id)
        if (earlier := await self._replay(idempotency_key, stream)) is not None:
            return earlier
        command_id = new_id()
        verified = False  # decided on the store's current state (else on the cache's)
        for attempt in range(MAX_RETRIES):
            cached = None if verified else self._cache.get(stream)
            if cached is None and not verified and attempt == 0:
                # a stream this process has not seen is most likely new (POST /jobs): decide on
                # the initial state at version 0 rather than read the stream's head first. The
                # append's expected version 0 is checked by the store inside its write, so a
                # stream that exists after all is refused and the next attempt loads it.
                cached = (0, self.aggregate.initial)
            if cached is not None:
                version, state = cached  # optimistic: the append's expected version catches a stale cache
            else:
                version, state = await self.load(entity_id)
                verified = True
            try:
                if expected_version is not None and expected_version != version:
                    raise ConcurrencyError(stream, expected_version, version)
                events = self.aggregate.decide(command, state)
            except (DomainError, ConcurrencyError):
                if not verified:
                    verified = True  # the cache may be behind another process: decide on the store's state
                    continue
                if (earlier := await self._replay(idempotency_key, stream)) is not None:
                    return earlier
                raise
            if not events:
                if not verified:
                    verified = True
                    continue
                return await self._replay(idempotency_key, stream) or CommandResult(stream, version, [])
            metadata = _metadata(ctx, command, command_id)  # one dict: the command's events share it
            new = [NewEvent.from_event(new_id(), ev, metadata) for ev in events]
            try:
                result = await self._append(stream, new, version, idempotency_key)
            except ConcurrencyError:
                self._cache.pop(stream, None)
                verified = False
                if expected_version is not None or attempt == MAX_RETRIES - 1:
                    if (earlier := await self._replay(idempotency_key, stream)) is not None:
                        return earlier
                    raise
                continue
            if not result.duplicate:
                for ev in events:
                    state = self.aggregate.evolve(state, ev)
                self._remember(stream, result.version, state)
            return CommandResult(stream, result.version, result.events, result.duplicate)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _append(
        self, stream: str, events: list[NewEvent], version: int, idempotency_key: str | None
    ) -> AppendResult:
        with (
            tracing.tracer().start_as_current_span(
                "event_store.append", attributes={"flp.stream_id": stream, "flp.events": len(events)}
            )
            if tracing.recording()
            else tracing.NO_SPAN
        ) as span:
            started = time.perf_counter()
            result = await self.store.append(stream, events, version, idempotency_key)
            metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
            if result.events and not result.duplicate:
                span.set_attribute("flp.position.first", result.events[0].position)
                span.set_attribute("flp.position.last", result.events[-1].position)
                for event in result.events:
                    metrics.child(metrics.EVENTS_APPENDED, event.type).inc()
                    _observe_fl(event.type, event.data)
            if result.group_size:
                span.set_attribute("flp.group_commit.appends", result.group_size)
                metrics.GROUP_COMMIT_SIZE.observe(result.group_size)
            return result

    async def _replay(self, idempotency_key: str | None, stream: str) -> CommandResult | None:
        """The earlier answer for this key, if an append was made with it."""
        if idempotency_key is None:
            return None
        earlier = await self.store.find_idempotent(idempotency_key)
        if earlier is None:
            return None
        if earlier.stream_id != stream:
            raise IdempotencyKeyReused(f"idempotency key was used for stream {earlier.stream_id}")
        return CommandResult(stream, earlier.version, earlier.events, duplicate=True)

    def _remember(self, stream: str, version: int, state: S) -> None:
        self._cache[stream] = (version, state)
        self._cache.move_to_end(stream)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


_IDS = random.Random()  # seeded from os.urandom; private, so no one's random.seed() repeats our ids
os.register_at_fork(after_in_child=_IDS.seed)


_VERSION_4 = (0x4 << 76) | (0x2 << 62)  # the version nibble and the RFC 4122 variant bits
_CLEAR = ~((0xF << 76) | (0x3 << 62))


def new_id() -> str:
    """A random (version 4) UUID for events and commands, from a generator seeded once from the
    OS rather than os.urandom per id: ids must be unique, not secret, and a system call on the
    event loop hands the GIL to the store's threads. (Formatted directly: uuid.UUID objects
    cost more than the ids themselves here.)"""
    h = f"{(_IDS.getrandbits(128) & _CLEAR) | _VERSION_4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _observe_fl(type_name: str, data: dict[str, Any]) -> None:
    """The federated-learning metrics an appended event moves (round duration, clients per
    round, failures by reason)."""
    if type_name == "RoundCompleted":
        metrics.ROUNDS_COMPLETED.inc()
        metrics.ROUND_SECONDS.observe(float(data.get("duration_s") or 0.0))
        metrics.ROUND_CLIENTS.observe(int(data.get("replied") or 0))
    elif type_name == "ClientFailed":
        metrics.CLIENT_FAILURES.labels(str(data.get("code", "unknown"))[:64]).inc()


def _metadata(ctx: CommandContext, command: object, command_id: str) -> dict[str, Any]:
    """Who and why, for every event of the command; `traceparent` names the command's own span
    when tracing records (else the caller's, as it came in), so consumers continue its trace."""
    meta: dict[str, Any] = {
        "actor": ctx.actor,
        "command": type(command).__name__,
        "command_id": command_id,
        "correlation_id": ctx.correlation_id or command_id,
        "causation_id": ctx.causation_id or command_id,
    }
    traceparent = tracing.current_traceparent() or ctx.traceparent
    if traceparent:
        meta["traceparent"] = traceparent
    meta.update(ctx.extra)
    return meta
