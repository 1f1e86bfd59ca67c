"""Feeds projections from the global feed. Each projection's checkpoint commits with its writes."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from persistence.ports import EventStore, FencedOut, Ownership
from persistence.records import RecordedEvent, UndecodableEvent
from projections.ports import ChangeListener, Commit, Doc, DocChange, ReadModelStore, encode_doc
from projections.projection import Projection
from projections.stream_faults import StreamFault, StreamFaults
from telemetry import metrics, tracing

log = logging.getLogger(__name__)
CACHED_DOCS = 5_000  # documents remembered per projection
FOLLOW_INTERVAL_S = 0.05  # how often a replica that does not own the projections looks for their commits


def _causes(decoded: list[tuple[RecordedEvent, Any]]) -> dict[int, str]:
    """position -> the traceparent of the command that appended the event there."""
    out: dict[int, str] = {}
    for recorded, _ in decoded:
        parent = recorded.metadata.get("traceparent")
        if isinstance(parent, str):
            out[recorded.position] = parent
    return out


class ProjectionStalled(RuntimeError):
    """A projection could not commit a batch: it stops (and is retried) rather than skip events."""


class ProjectionRunner:
    """Applies the feed to every projection, each with its own checkpoint. An event that does not
    decode freezes its stream (see projections.stream_faults); a batch a projection cannot commit
    stops the runner (`stalled`, shown in /health) instead of being passed over."""

    def __init__(
        self,
        read_models: ReadModelStore,
        projections: Sequence[Projection],
        listeners: Sequence[ChangeListener] = (),
        commit_attempts: int = 3,
    ) -> None:
        self.read_models = read_models
        self.projections = list(projections)
        self.listeners = list(listeners)
        self.position = 0
        self.faults: dict[str, StreamFault] = {}
        self.stalled: str | None = None
        self._faults_loaded = False
        self._commit_attempts = commit_attempts
        self._fault_log = StreamFaults()
        self._checkpoints: dict[str, int] = {}  # what this runner last committed, per projection
        self._docs: dict[str, OrderedDict[str, bytes | None]] = {}  # ... and the documents (None: none)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._tiebreak = itertools.count()
        self.ownership = Ownership()  # the projections lease, when replicas share the store (flp.exclusive)

    async def low_checkpoint(self) -> int:
        return min([await self.read_models.get_checkpoint(p.name) for p in self.projections], default=0)

    async def apply(self, batch: Sequence[RecordedEvent]) -> None:
        """Apply one batch of the feed to every projection (skipping what each already has)."""
        if not batch:
            return
        await self._load_faults()
        decoded: list[tuple[RecordedEvent, Any]] = []
        new_faults: list[tuple[RecordedEvent, Any]] = []
        for r in batch:
            fault = self.faults.get(r.stream_id)
            if fault is not None and r.position >= fault.position:
                continue  # a frozen stream
            try:
                decoded.append((r, r.to_event()))
            except UndecodableEvent as exc:
                log.error("projections: %s; its stream is frozen", exc)
                fault = StreamFault(r.stream_id, r.version, r.position, r.type, exc.reason)
                self.faults[r.stream_id] = fault
                new_faults.append((r, fault))
        try:
            if new_faults:  # committed before any projection moves past the bad event
                await self._apply_one(self._fault_log, new_faults, batch[-1].position)
            await self._apply_all(decoded, batch[-1].position)
        except FencedOut:
            self._forget_all()  # another replica owns the projections now; nothing is stuck
            raise
        except Exception as exc:
            self.stalled = f"{type(exc).__name__}: {exc}"
            raise
        self.stalled = None
        self._advance(batch[-1].position)

    async def _load_faults(self) -> None:
        """The streams frozen by earlier runs (their bad events may lie behind every checkpoint)."""
        if not self._faults_loaded:
            docs = await self.read_models.dump(self._fault_log.name)
            self.faults.update({k: StreamFault.from_doc(d) for k, d in docs.items()})
            self._faults_loaded = True

    async def _apply_all(self, decoded: list[tuple[RecordedEvent, Any]], upto: int) -> None:
        """The usual path: every projection's writes for the batch in one `commit_many`, from the
        checkpoints this runner committed last. A projection whose checkpoint moved meanwhile
        (another runner) takes the careful path, `_apply_one`."""
        prepared: list[tuple[Projection, Commit, dict[str, bytes], dict[str, bytes]]] = []
        spent: dict[str, float] = {}
        for projection in self.projections:
            checkpoint = self._checkpoints.get(projection.name)
            if checkpoint is None:
                checkpoint = await self.read_models.get_checkpoint(projection.name)
            if checkpoint >= upto:
                continue
            started = time.perf_counter()
            with self._span(projection.name, decoded, checkpoint):
                changes, before = await self._changes(projection, decoded, checkpoint)
            spent[projection.name] = time.perf_counter() - started
            encoded = {key: encode_doc(doc) for key, (_, doc) in changes.items() if doc is not None}
            commit = Commit(projection.name, changes, checkpoint, upto, self.ownership.token, encoded)
            prepared.append((projection, commit, before, encoded))
        if not prepared:
            return
        started = time.perf_counter()
        results = await self.read_models.commit_many([commit for _, commit, _, _ in prepared])
        committed = time.perf_counter() - started
        for name, seconds in spent.items():  # each projection's own work and the commit they share
            metrics.child(metrics.PROJECTION_APPLY_SECONDS, name).observe(seconds + committed)
        accepted: list[tuple[str, Mapping[str, tuple[int, Doc | None]], dict[str, bytes], Mapping[str, bytes]]] = []
        for (projection, commit, before, encoded), done in zip(prepared, results, strict=True):
            if done:
                self._checkpoints[projection.name] = upto
                self._remember_docs(projection.name, commit.changes, encoded)
                accepted.append((projection.name, commit.changes, before, encoded))
        self._tell(decoded, accepted)  # every projection's changes, to the listeners at once
        for (projection, _, _, _), done in zip(prepared, results, strict=True):
            if not done:
                self._forget(projection.name)
                await self._apply_one(projection, decoded, upto)

    def _forget(self, name: str) -> None:
        self._checkpoints.pop(name, None)
        self._docs.pop(name, None)

    def _forget_all(self) -> None:
        self._checkpoints.clear()
        self._docs.clear()

    def _span(self, name: str, decoded: list[tuple[RecordedEvent, Any]], checkpoint: int) -> Any:
        """`projection.apply <name>` for a batch: a child of the first event's command span,
        linked to the other commands' spans (nothing to build while no span records)."""
        if not tracing.recording():
            return tracing.NO_SPAN
        todo = [r for r, _ in decoded if r.position > checkpoint]
        first = todo[0].metadata.get("traceparent") if todo else None
        return tracing.tracer().start_as_current_span(
            f"projection.apply {name}",
            context=tracing.context_from(first if isinstance(first, str) else None),
            links=tracing.links(r.metadata for r in todo[1:]),
            attributes={"flp.projection": name, "flp.events": len(todo)},
        )

    async def _changes(
        self, projection: Projection, decoded: list[tuple[RecordedEvent, Any]], checkpoint: int
    ) -> tuple[dict[str, tuple[int, Doc | None]], dict[str, bytes]]:
        """The documents the events after `checkpoint` change, and (for listeners) their previous
        versions, encoded."""
        keyed = [(r, ev, keys) for r, ev in decoded if r.position > checkpoint and (keys := projection.keys(ev))]
        first: dict[str, Any] = {}  # each key's first event here
        for _, event, keys in keyed:
            for key in keys:
                first.setdefault(key, event)
        # a key whose first event makes its document afresh needs no lookup (Projection.fresh_on)
        wanted = sorted(k for k, event in first.items() if not isinstance(event, projection.fresh_on))
        docs, before = await self._current(projection.name, wanted)
        changes: dict[str, tuple[int, Doc | None]] = {}
        for recorded, event, keys in keyed:
            for key in keys:
                doc = projection.apply(docs.get(key), event, recorded)
                docs[key] = doc
                changes[key] = (recorded.position, doc)
        return changes, before

    async def _current(self, name: str, keys: list[str]) -> tuple[dict[str, Doc | None], dict[str, bytes]]:
        """The current documents (working copies the projection may change) and their encoded
        form. From the documents this runner committed last when it has them: it is their only
        writer while its commits go through (a commit refused because another runner moved the
        checkpoint forgets them).

        They are kept encoded and decoded for each batch. Keeping the decoded documents instead
        (projections copying on write) saved that decode, ~23% of the loop on round reports, but
        it kept millions of small objects alive for the cyclic collector to scan: gen-1
        collections of ~130 ms, and POST /jobs p99 63-66 ms against 36-40 after round reports.
        A bytes object is not tracked by the collector at all."""
        cache = self._docs.setdefault(name, OrderedDict())
        encoded: dict[str, bytes] = {}
        missing: list[str] = []
        for key in keys:
            if key in cache:
                cache.move_to_end(key)
                known = cache[key]
                if known is not None:
                    encoded[key] = known
            else:
                missing.append(key)
        if missing:
            fetched = await self.read_models.get_many(name, missing)
            encoded.update((k, encode_doc(d)) for k, d in fetched.items())
        return {k: orjson.loads(b) for k, b in encoded.items()}, encoded

    def _remember_docs(
        self, name: str, changes: Mapping[str, tuple[int, Doc | None]], encoded: Mapping[str, bytes]
    ) -> None:
        """Keep the committed documents, encoded (`encoded`: those the commit was given)."""
        cache = self._docs.setdefault(name, OrderedDict())
        for key, (_, doc) in changes.items():
            cache[key] = None if doc is None else encoded.get(key) or encode_doc(doc)
            cache.move_to_end(key)
        while len(cache) > CACHED_DOCS:
            cache.popitem(last=False)

    def _tell(
        self,
        decoded: list[tuple[RecordedEvent, Any]],
        committed: Sequence[tuple[str, Mapping[str, tuple[int, Doc | None]], dict[str, bytes], Mapping[str, bytes]]],
    ) -> None:
        """Tell the listeners, at once, what these projections (name, changes, previous versions,
        committed encodings) committed of the batch `decoded` (nothing is built when nobody listens)."""
        if not self.listeners:
            return
        causes = _causes(decoded)
        self._notify(
            [
                DocChange(name, key, pos, doc, before.get(key), causes.get(pos), encoded.get(key))
                for name, changes, before, encoded in committed
                for key, (pos, doc) in changes.items()
            ]
        )

    async def _apply_one(self, projection: Projection, decoded: list[tuple[RecordedEvent, Any]], upto: int) -> None:
        """Apply and commit with the checkpoint moved to `upto` (the batch's end, even when the
        projection has nothing in it: its checkpoint says how far it has read). A lost race with
        another runner is retried from the checkpoint it left; a commit refused while nobody
        moved the checkpoint stops the projection (ProjectionStalled) instead of skipping."""
        refused, last_seen = 0, -1
        while True:
            checkpoint = await self.read_models.get_checkpoint(projection.name)
            if checkpoint >= upto:
                return  # another runner applied all of it
            if checkpoint != last_seen:
                refused, last_seen = 0, checkpoint
            elif refused >= self._commit_attempts:
                raise ProjectionStalled(
                    f"projection {projection.name} could not commit up to position {upto}: the store refused "
                    f"{refused} times at checkpoint {checkpoint}"
                )
            changes, before = await self._changes(projection, decoded, checkpoint)
            if await self.read_models.commit(projection.name, changes, checkpoint, upto, self.ownership.token):
                self._checkpoints[projection.name] = upto
                encoded = {key: encode_doc(doc) for key, (_, doc) in changes.items() if doc is not None}
                self._remember_docs(projection.name, changes, encoded)
                self._tell(decoded, [(projection.name, changes, before, encoded)])
                return
            self._forget(projection.name)
            refused += 1
            log.info("projection %s: checkpoint moved under us, retrying", projection.name)

    def _notify(self, changes: list[DocChange]) -> None:
        if not changes:
            return
        changes.sort(key=lambda c: c.position)
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a listener must never stop the projection
                log.exception("change listener failed")

    async def catch_up(self, store: EventStore, batch_size: int = 2000) -> int:
        """Apply everything up to the store's head; returns the position reached. The next batch
        is read while the current one is applied."""
        await self._load_faults()
        position = await self.low_checkpoint()
        batch = await store.read_all(position, batch_size)
        while batch:
            position = batch[-1].position
            next_batch = asyncio.create_task(store.read_all(position, batch_size))
            try:
                await self.apply(batch)
            except BaseException:
                next_batch.cancel()
                raise
            batch = await next_batch
        return position

    async def run(self, store: EventStore, batch_size: int = 2000) -> None:
        """Follow the feed forever (until cancelled, or FencedOut when another replica took the
        projections lease)."""
        self._forget_all()  # what a previous turn as owner (or as follower) cached may be stale
        await self.catch_up(store, batch_size)
        feed: AsyncIterator[list[RecordedEvent]] = store.subscribe(await self.low_checkpoint(), batch_size)
        async for batch in feed:
            await self.apply(batch)

    async def follow(self, interval_s: float = FOLLOW_INTERVAL_S) -> None:
        """On a replica that does not own the projections (another replica runs `run`): pass what
        the owner commits to this replica's listeners (live subscribers, as JSON Patches against
        the versions seen before) and waiters (read-your-writes), by polling the checkpoints.

        A runner that owned the projections before starts from what it last told its listeners,
        not from the checkpoints: when its lease was lost mid-batch (fenced out between two
        projections' commits, or cancelled after a commit), it committed changes it never got to
        pass on, and they would otherwise never reach this replica's live subscribers (who skip
        what they already have, by position)."""
        self._forget_all()
        names = [p.name for p in self.projections]
        told = self.position
        seen = {name: await self.read_models.get_checkpoint(name) for name in names}
        if told:
            seen = {name: min(checkpoint, told) for name, checkpoint in seen.items()}
        self._advance(min(seen.values(), default=0))
        while True:
            await self.read_models.wait_commit_elsewhere(interval_s)
            changes: list[DocChange] = []
            for name in [*names, self._fault_log.name]:
                checkpoint = await self.read_models.get_checkpoint(name)  # first: no change past it is half-seen
                if checkpoint <= seen.get(name, 0):
                    continue
                after = await self.read_models.changed_after(name, seen.get(name, 0))
                found = [c for c in after if c.position <= checkpoint]
                seen[name] = checkpoint
                if name == self._fault_log.name:
                    self.faults.update({c.key: StreamFault.from_doc(c.doc) for c in found if c.doc is not None})
                    continue
                cache = self._docs.setdefault(name, OrderedDict())
                for change in found:
                    changes.append(DocChange(name, change.key, change.position, change.doc, cache.get(change.key)))
                self._remember_docs(name, {c.key: (c.position, c.doc) for c in found}, {})
            self._notify(changes)
            self._advance(min(seen[name] for name in names) if names else 0)

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Block until the projections have applied `position` (read-your-writes for callers).
        Waiters sit in a heap by position: each batch wakes exactly those it satisfied."""
        if self.position >= position:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (position, next(self._tiebreak), waiter))
        try:
            async with asyncio.timeout(timeout):
                await waiter
        finally:
            if not waiter.done():
                waiter.cancel()  # left in the heap; dropped when its position comes

    def _advance(self, position: int) -> None:
        self.position = max(self.position, position)
        while self._waiters and self._waiters[0][0] <= self.position:
            _, _, waiter = heapq.heappop(self._waiters)
            if not waiter.done():
                waiter.set_result(None)

    async def rebuild(self, store: EventStore, names: Sequence[str] | None = None, batch_size: int = 5000) -> int:
        """Drop the named projections (all by default) and replay them from position 0."""
        chosen = [p for p in self.projections if names is None or p.name in names]
        for projection in chosen:
            await self.read_models.drop(projection.name)
        if names is None:
            await self.read_models.drop(StreamFaults.name)
        return await ProjectionRunner(self.read_models, chosen, self.listeners).catch_up(store, batch_size)
