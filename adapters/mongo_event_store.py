"""MongoDB event store: no multi-document transactions; standalone, replica set or sharded.

Layout (collection `event_commits`): one document per append commit,

    {_id: first_position, last_position, stream_id, first_version, last_version, last_hash,
     idempotency_key?, recorded_at, events: [envelope, ...]}

plus *markers* `{_id: p, last_position: q, abandoned: true}` for position ranges that were
allocated but will never hold events. A second collection `event_counters` holds the position
counter `{_id: "position", seq}` and a hint of the safe high-water mark.

Per-stream concurrency. A writer reads the stream's newest commit (version v, hash h), checks
`expected_version`, and inserts a commit whose `first_version` is v+1 and whose first
`prev_hash` is h. The unique index (stream_id, first_version) lets exactly one of several
concurrent writers at the same version in; the others get DuplicateKeyError -> ConcurrencyError
(or, with `expected_version=None`, a transparent retry). Since every commit starts right after
the commit its writer saw, a stream's commits tile its versions and the hash chain is unbroken.
Idempotency keys live on the commit under a unique partial index, so concurrent retries with
one key also insert once; event ids are unique through a multikey index on `events.event_id`.

Global order, gap-free for readers (counter + safe high-water mark). Positions come from
`find_one_and_update($inc: {seq: n})` on the counter *before* the insert, so two writers can
commit out of order: position 7 may be visible before 6. Allocated ranges tile the position
space, so once the document ending at p is read, the next one must have `_id == p+1`. Readers
walk documents by `last_position` and stop at the first hole (`_id` > cursor+1): they never read
past a position that is not yet resolved. A hole is resolved by its commit or by a marker with
the same `_id`; the `_id` unique index makes "commit" and "abandoned" mutually exclusive,
whichever insert comes first wins, so a reader can never skip an event that commits late:
  * a writer whose insert fails (a unique-index conflict, or a network error with an unknown
    outcome) inserts a marker over its whole range; if that marker collides, it reads `_id`:
    either its own commit (only the reply was lost: the append succeeded) or a reader's marker
    (its slot was given up: it marks the rest of its range and retries with fresh positions);
  * a reader that has seen a hole stay allocated (counter >= p) for `abandon_after_s` (bounded
    wait; default 10 s) inserts a one-position marker at p, but only where p starts a range
    (the document before it ends at p-1), never inside a range that may still commit. A crashed
    writer therefore delays readers by at most that long, and never stalls them forever.
Positions are strictly increasing and never reused; abandoned ranges are holes in the numbering
that readers step over (they appear only when an append lost a race or a writer died between
allocating and inserting). `head_position` is the newest event at or below the safe high-water
mark, which readers also persist as a hint (`$max`-style guarded upsert) for the next start.

Waking subscribers: commits from this process wake them at once; on a replica set / mongos a
change stream on `event_commits` (inserts only) wakes them for other processes' commits;
otherwise they wait at most `poll_s` before reading again (no tight loops).

Sharded clusters: leave `event_commits` unsharded (the default for a new collection); its
unique indexes and the single global order need one shard to own it. Read-model and artifact
collections can be sharded freely. Each append is one document, so it must stay under 16 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.clock import utc_timestamp
from adapters.mongo_client import (
    MongoCollection,
    MongoConnection,
    collection,
    supports_change_streams,
    topology,
)
from persistence.chain import GENESIS_HASH, link
from persistence.encoding import EncodedEvent, encode
from persistence.ports import AppendResult, ConcurrencyError, IdempotencyKeyReused
from persistence.records import NewEvent, RecordedEvent
from persistence.seals import Sealer

log = logging.getLogger(__name__)

COMMITS = "event_commits"
COUNTERS = "event_counters"
POSITION_COUNTER = "position"
HWM_HINT = "safe_hwm"
_FETCH_DOCS = 500  # commit documents per read round trip


class _Outcome(enum.Enum):
    COMMITTED = "committed"
    CONFLICT = "conflict"  # a unique index refused the commit; a marker now holds the range
    NOT_STORED = "not stored"  # a reader gave the range up, or the insert never reached the server


class _Wakeup:
    """Edge-triggered wake-up: take a token before reading, wait on it after (no lost wake-ups)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def token(self) -> asyncio.Event:
        return self._event

    def notify(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    @staticmethod
    async def wait(token: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(token.wait(), timeout=max(timeout, 0.001))


def _doc_events(doc: dict[str, Any]) -> list[RecordedEvent]:
    return [RecordedEvent.from_dict(e) for e in doc.get("events", ())]


class MongoEventStore:
    def __init__(
        self,
        connection: MongoConnection,
        *,
        abandon_after_s: float = 10.0,
        poll_s: float = 1.0,
        max_attempts: int = 100,
        watch: bool = True,
        sealer: Sealer | None = None,
    ) -> None:
        self._conn = connection
        self._sealer = sealer  # seals travel inside the commit document: one atomic insert
        self.commits: MongoCollection = collection(connection.db, COMMITS)
        self.counters: MongoCollection = collection(connection.db, COUNTERS)
        self.abandon_after_s = abandon_after_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self._watch_enabled = watch
        self._wake = _Wakeup()
        self._watcher: asyncio.Task[None] | None = None
        self._opened = False
        # (counter value, monotonic time first seen): position p has been allocated since the
        # earliest time of an entry with value >= p. Bounds how long readers wait on a hole.
        self._allocated_seen: list[tuple[int, float]] = []
        self._next_deadline: float | None = None
        self._hwm = 0  # every position <= _hwm is a commit or a marker
        self._head_event = 0  # newest event position <= _hwm

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self) -> MongoEventStore:
        await ensure_event_indexes(self.commits)
        # The counter exists before the first allocation (concurrent openers: one wins).
        with contextlib.suppress(DuplicateKeyError):
            await self.counters.update_one({"_id": POSITION_COUNTER}, {"$setOnInsert": {"seq": 0}}, upsert=True)
        hint = await self.counters.find_one({"_id": HWM_HINT})
        if hint is not None:
            self._hwm, self._head_event = int(hint["position"]), int(hint["head_event"])
        if self._watch_enabled and supports_change_streams(await topology(self._conn.db)):
            self._watcher = asyncio.create_task(self._watch_commits(), name="flp-mongo-watch")
        self._conn.lease()  # taken once open succeeded: close() gives it back
        self._opened = True
        return self

    async def close(self) -> None:
        if not self._opened:
            return
        self._opened = False
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self._conn.release()

    async def _watch_commits(self) -> None:
        """Wake subscribers on every insert into event_commits (commits and markers). If the
        stream fails (no privilege, failover), subscribers still poll; retry with backoff."""
        pipeline = [{"$match": {"operationType": "insert"}}, {"$project": {"documentKey": 1}}]

        def failed(state: RetryCallState) -> None:
            wait = state.next_action.sleep if state.next_action else 0.0
            error = state.outcome.exception() if state.outcome else None
            log.warning("change stream on %s failed (%s); polling, retry in %.1fs", COMMITS, error, wait)

        while True:  # each healthy stream that ends starts the backoff afresh
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(PyMongoError),
                wait=wait_exponential(multiplier=self.poll_s, max=60.0),
                before_sleep=failed,
            ):
                with attempt:
                    stream = await self.commits.watch(pipeline)
                    async with stream:
                        self._wake.notify()  # anything committed while (re)connecting
                        async for _change in stream:
                            self._wake.notify()

    # --- writes ------------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        encoded = encode(events)  # before a position is allocated: a refused append leaves no hole
        for _attempt in range(self.max_attempts):
            if idempotency_key is not None:
                earlier = await self._earlier(idempotency_key, stream_id)
                if earlier is not None:
                    return earlier
            head = await self.commits.find_one(
                {"stream_id": stream_id},
                {"last_version": 1, "last_hash": 1},
                sort=[("first_version", -1)],
            )
            version, prev_hash = (int(head["last_version"]), str(head["last_hash"])) if head else (0, GENESIS_HASH)
            if expected_version is not None and expected_version != version:
                raise ConcurrencyError(stream_id, expected_version, version)
            if not events:
                return AppendResult(stream_id, version, [])
            first, last = await self._allocate(len(events))
            doc, recorded = self._commit_doc(stream_id, encoded, version, prev_hash, first, idempotency_key)
            outcome = await self._insert_or_abandon(doc, first, last)
            if outcome is _Outcome.COMMITTED:
                self._wake.notify()
                return AppendResult(stream_id, recorded[-1].version, recorded)
            if outcome is not _Outcome.CONFLICT:
                continue  # nothing stored (slot given up by a reader, or never sent): try again
            # A unique index refused the commit: the idempotency key, an event id, or the stream
            # version (another writer appended at this version first).
            if idempotency_key is not None:
                earlier = await self._earlier(idempotency_key, stream_id)
                if earlier is not None:
                    return earlier
            ids = [e.event_id for e in events]
            # (stream_id $exists: the event-id index is partial on it, so the query can use it)
            dup = await self.commits.find_one(
                {"stream_id": {"$exists": True}, "events.event_id": {"$in": ids}}, {"_id": 1}
            )
            if dup is not None:
                raise ValueError(f"an event id of this append is already stored: {ids}")
            if expected_version is not None:
                # the winner is at least one version further, even if a lagging read says not
                actual = max(await self.stream_version(stream_id), expected_version + 1)
                raise ConcurrencyError(stream_id, expected_version, actual)
            # expected_version=None: read the new head and try again
        raise RuntimeError(f"append to {stream_id} did not get through in {self.max_attempts} attempts")

    async def _earlier(self, key: str, stream_id: str) -> AppendResult | None:
        found = await self.find_idempotent(key)
        if found is not None and found.stream_id != stream_id:
            raise IdempotencyKeyReused(f"idempotency key was used for stream {found.stream_id}")
        return found

    async def _allocate(self, n: int) -> tuple[int, int]:
        counter = await self.counters.find_one_and_update(
            {"_id": POSITION_COUNTER},
            {"$inc": {"seq": n}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        last = int(counter["seq"])
        return last - n + 1, last

    def _commit_doc(
        self,
        stream_id: str,
        events: Sequence[EncodedEvent],
        version: int,
        prev_hash: str,
        first: int,
        idempotency_key: str | None,
    ) -> tuple[dict[str, Any], list[RecordedEvent]]:
        recorded_at = utc_timestamp()
        chained = link(stream_id, events, version, first, prev_hash, recorded_at, self._sealer)
        recorded = [c.event for c in chained]
        last_hash = recorded[-1].hash if recorded else prev_hash
        doc: dict[str, Any] = {
            "_id": first,
            "last_position": first + len(events) - 1,
            "stream_id": stream_id,
            "first_version": version + 1,
            "last_version": version + len(events),
            "last_hash": last_hash,
            "recorded_at": recorded_at,
            "events": [e.to_dict() for e in recorded],
        }
        if idempotency_key is not None:
            doc["idempotency_key"] = idempotency_key
        return doc, recorded

    async def _insert_or_abandon(self, doc: dict[str, Any], first: int, last: int) -> _Outcome:
        """Insert the commit; if that fails, settle [first, last] so no reader waits on it."""
        refused = False
        fatal: Exception | None = None
        try:
            await self.commits.insert_one(doc)
            return _Outcome.COMMITTED
        except DuplicateKeyError:
            refused = True  # stream version, idempotency key, event id, or `first` given up
        except ConnectionFailure as exc:  # the outcome is unknown: settle it with the marker below
            log.warning("insert of commit %d failed (%s); settling the range", first, exc)
        except Exception as exc:  # refused for good (too large, not encodable, not authorized...)
            fatal = exc
        try:
            await self.commits.insert_one({"_id": first, "last_position": last, "abandoned": True})
            outcome = _Outcome.CONFLICT if refused else _Outcome.NOT_STORED
        except DuplicateKeyError:  # `first` is taken: by our own commit, or by a reader's marker
            holder = await self.commits.find_one({"_id": first}, {"events.event_id": 1})
            ours = doc["events"][0]["event_id"]
            if holder is not None and holder.get("events") and holder["events"][0]["event_id"] == ours:
                return _Outcome.COMMITTED  # our insert got through; only its reply was lost
            for position in range(first + 1, last + 1):  # a reader took `first`; give up the rest
                await self._mark_abandoned(position)
            outcome = _Outcome.NOT_STORED
        if fatal is not None:
            raise fatal  # the range is settled; retrying would fail the same way
        return outcome

    async def _mark_abandoned(self, position: int) -> bool:
        """True if this call placed the marker; False if `position` was already taken."""
        try:
            await self.commits.insert_one({"_id": position, "last_position": position, "abandoned": True})
        except DuplicateKeyError:
            return False
        self._wake.notify()
        return True

    # --- reads -------------------------------------------------------------------------------

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]:
        query: dict[str, Any] = {"stream_id": stream_id, "last_version": {"$gte": from_version}}
        if to_version is not None:
            query["first_version"] = {"$lte": to_version}
        docs = await self.commits.find(query, sort=[("first_version", 1)]).to_list(None)
        upper = to_version if to_version is not None else 2**62
        return [e for d in docs for e in _doc_events(d) if from_version <= e.version <= upper]

    async def find_idempotent(self, idempotency_key: str) -> AppendResult | None:
        doc = await self.commits.find_one({"idempotency_key": idempotency_key})
        if doc is None:
            return None
        return AppendResult(doc["stream_id"], int(doc["last_version"]), _doc_events(doc), duplicate=True)

    async def stream_version(self, stream_id: str) -> int:
        head = await self.commits.find_one({"stream_id": stream_id}, {"last_version": 1}, sort=[("first_version", -1)])
        return int(head["last_version"]) if head else 0

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        out: list[RecordedEvent] = []
        cursor = after_position
        at_boundary = after_position == 0  # cursor is the end of a resolved document (or 0)
        while len(out) < limit:
            page = min(limit - len(out), _FETCH_DOCS)  # a commit holds >= 1 event, a marker none
            docs = await self.commits.find(
                {"last_position": {"$gt": cursor}}, sort=[("last_position", 1)], limit=page
            ).to_list(None)
            hole = False
            for doc in docs:
                if int(doc["_id"]) > cursor + 1:
                    hole = True  # position cursor+1 is allocated but not (yet) resolved
                    break
                out.extend(e for e in _doc_events(doc) if e.position > cursor)
                cursor = int(doc["last_position"])
                at_boundary = True
            if not hole and len(docs) == page:
                continue
            # Stopped at cursor+1. With events in hand, return them; with none, see whether the
            # missing position was abandoned (then read on past its marker).
            if not out and await self._settle_hole(cursor + 1, hole, at_boundary):
                continue
            break
        return out[:limit]

    async def _settle_hole(self, position: int, known_allocated: bool, at_boundary: bool) -> bool:
        """`position` is missing. True if it is now resolved by our marker (it was allocated but
        stayed uncommitted for abandon_after_s); False if in flight, not allocated, or unclear.

        Only the start of an allocation range may be given up: a marker inside a live range
        would hide that range's events from readers starting there. `position` is a range start
        if the document before it ends at position-1 (a marker there only ever covers the start
        of a range that can no longer commit, so its successors are safe too).
        """
        counter = await self.counters.find_one({"_id": POSITION_COUNTER})
        seq = int(counter["seq"]) if counter else 0
        if seq < position and not known_allocated:
            return False  # caught up: nothing allocated beyond the cursor
        now = time.monotonic()
        if not self._allocated_seen or self._allocated_seen[-1][0] < seq:
            self._allocated_seen.append((seq, now))
            if len(self._allocated_seen) > 256:
                del self._allocated_seen[:128]  # forgetting old sightings only delays abandoning
        since = next((t for s, t in self._allocated_seen if s >= position), now)
        deadline = since + self.abandon_after_s
        if now < deadline:
            self._wait_until(deadline)
            return False
        if not at_boundary and position > 1:
            before = await self.commits.find_one({"last_position": position - 1}, {"_id": 1})
            if before is None:
                self._wait_until(now + self.poll_s)  # mid-range cursor: wait for the commit
                return False
        if await self._mark_abandoned(position):
            log.warning("position %d was allocated %.1fs ago but not committed: gave it up", position, now - since)
            return True
        # Taken meanwhile, by the late commit or another reader's marker, which this read may not
        # see yet (read concern majority lags the unique-index check): look again shortly.
        self._wait_until(now + min(self.poll_s, 0.05))
        return False

    def _wait_until(self, deadline: float) -> None:
        if self._next_deadline is None or deadline < self._next_deadline:
            self._next_deadline = deadline

    async def head_position(self) -> int:
        """Newest event position below which no position is unresolved (the safe high-water mark)."""
        before = self._hwm
        while True:
            docs = await self.commits.find(
                {"last_position": {"$gt": self._hwm}},
                {"_id": 1, "last_position": 1, "stream_id": 1},
                sort=[("last_position", 1)],
                limit=_FETCH_DOCS,
            ).to_list(None)
            hole = False
            for doc in docs:
                if int(doc["_id"]) > self._hwm + 1:
                    hole = True
                    break
                self._hwm = int(doc["last_position"])
                if "stream_id" in doc:  # a commit, not a marker
                    self._head_event = self._hwm
            if not hole and len(docs) == _FETCH_DOCS:
                continue
            if await self._settle_hole(self._hwm + 1, hole, at_boundary=True):
                continue
            break
        if self._hwm > before:
            with contextlib.suppress(DuplicateKeyError):
                await self.counters.update_one(
                    {"_id": HWM_HINT, "position": {"$lt": self._hwm}},
                    {"$set": {"position": self._hwm, "head_event": self._head_event}},
                    upsert=True,
                )
        return self._head_event

    async def subscribe(self, after_position: int = 0, batch_size: int = 1000) -> AsyncIterator[list[RecordedEvent]]:
        position = after_position
        while True:
            token = self._wake.token()
            self._next_deadline = None
            batch = await self.read_all(position, batch_size)
            if batch:
                position = batch[-1].position
                yield batch
                continue
            timeout = self.poll_s
            if self._next_deadline is not None:
                timeout = min(timeout, self._next_deadline - time.monotonic())
            await self._wake.wait(token, timeout)


async def ensure_event_indexes(commits: MongoCollection) -> None:
    """Idempotent: creating an index that exists with the same options is a no-op."""
    commits_only = {"stream_id": {"$exists": True}}  # markers carry no stream
    await commits.create_index(
        [("stream_id", 1), ("first_version", 1)],
        name="stream_version_unique",
        unique=True,
        partialFilterExpression=commits_only,
    )
    await commits.create_index([("last_position", 1)], name="last_position_unique", unique=True)
    await commits.create_index(
        [("idempotency_key", 1)],
        name="idempotency_key_unique",
        unique=True,
        partialFilterExpression={"idempotency_key": {"$exists": True}},
    )
    await commits.create_index(
        [("events.event_id", 1)], name="event_id_unique", unique=True, partialFilterExpression=commits_only
    )
