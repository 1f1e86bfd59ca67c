"""Audit verification, pure: the per-stream hash chain, stream versions, global position
continuity, keyed seals, self-contained job bundles, time travel by timestamp and state diffs.

What each check catches (an attacker who can edit the store's rows, but holds no seal key):
- a changed field: the event's sha256 no longer matches its content;
- a deleted event: a gap in the global positions and a broken `prev_hash` link;
- two events swapped: a version out of sequence and a broken link;
- a forged event with a recomputed chain: it has no valid seal (an HMAC under a key kept outside
  the store); deleting the newest events is caught by seals for events the store no longer has;
- events of different streams trading global positions keep every stream's chain intact: the
  seals cover the position, the sha256 chain does not.
Not detected: an attacker holding the seal key, or one who rolls back both the store and the seal
store to an earlier consistent state (keep an external copy of the chain head against that).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from domain.training_job import stream_id
from persistence.chain import GENESIS_HASH, expected_hash
from persistence.ports import EventStore, SealStore
from persistence.records import RecordedEvent, UndecodableEvent
from persistence.seals import SealRecord, seal_of

PAGE = 5000


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link: where (stream, version, position) and why."""

    stream_id: str
    version: int
    position: int
    reason: str
    code: str = "broken"  # gap | order | version | link | content | undecodable | unsealed | seal | moved | missing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"stream {self.stream_id} version {self.version} position {self.position}: {self.reason}"


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    events_checked: int
    streams: int
    head_position: int
    sealed_checked: bool
    first_break: Break | None = None
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "streams": self.streams,
            "head_position": self.head_position,
            "sealed_checked": self.sealed_checked,
            "first_break": self.first_break.to_dict() if self.first_break else None,
        }


class ChainVerifier:
    """Feed events in position order; remembers the first break.

    `contiguous_positions`: the input is the whole global feed from `after_position` (positions
    must be after+1, after+2, ...); otherwise (one stream) positions only have to increase.

    With `seal_key`, every event must be sealed: by the seal written with it (`event.seal`), and
    by its copy in the seal store (pass it to `feed`), which lives apart from the events so that
    deleting the newest events shows. The copy is made after the append (the seal store may trail
    the events by a moment, and a crash may leave its tail to be copied at the next start): an
    event with a valid seal of its own beyond `mirror_head` (the seal store's newest position) is
    pending, not broken. An event with neither seal, or a copy missing below `mirror_head`, is.
    """

    def __init__(
        self,
        *,
        contiguous_positions: bool = True,
        after_position: int = 0,
        seal_key: bytes | None = None,
        mirror_head: int = 0,
        decode: bool = True,
    ) -> None:
        self.decode = decode  # also check that every event still decodes to its event class
        self.contiguous = contiguous_positions
        self.last_position = after_position
        self.seal_key = seal_key
        self.mirror_head = mirror_head
        self.heads: dict[str, tuple[int, str, int]] = {}  # stream -> (version, hash, position)
        self.checked = 0
        self.first_break: Break | None = None

    def feed(self, event: RecordedEvent, seal: SealRecord | None = None) -> Break | None:
        if self.first_break is not None:
            return self.first_break
        found = self._check(event, seal)
        if found is not None:
            self.first_break = found
            return found
        self.heads[event.stream_id] = (event.version, event.hash, event.position)
        self.last_position = event.position
        self.checked += 1
        return None

    def _check(self, event: RecordedEvent, seal: SealRecord | None) -> Break | None:
        def broken(reason: str, code: str) -> Break:
            return Break(event.stream_id, event.version, event.position, reason, code)

        if self.contiguous and event.position != self.last_position + 1:
            if event.position <= self.last_position:
                return broken(f"position {event.position} is not after {self.last_position}", "order")
            missing = f"{self.last_position + 1}" + (
                f"..{event.position - 1}" if event.position - 1 > self.last_position + 1 else ""
            )
            return broken(f"global feed has a gap: position {missing} missing (deleted event?)", "gap")
        if not self.contiguous and event.position <= self.last_position:
            return broken(f"position {event.position} is not after {self.last_position}", "order")
        version, prev_hash, _ = self.heads.get(event.stream_id, (0, GENESIS_HASH, 0))
        if event.version != version + 1:
            return broken(f"version {event.version} follows version {version} (expected {version + 1})", "version")
        if event.prev_hash != prev_hash:
            return broken("prev_hash does not match the hash of the stream's previous event", "link")
        if expected_hash(event) != event.hash:
            return broken("content does not match its hash (a field was changed)", "content")
        if self.decode:
            try:
                event.to_event()
            except UndecodableEvent as exc:
                return broken(f"does not decode as {event.type}: {exc.reason}", "undecodable")
        if self.seal_key is not None:
            return self._check_seals(event, seal, broken)
        return None

    def _check_seals(
        self, event: RecordedEvent, copy: SealRecord | None, broken: Callable[[str, str], Break]
    ) -> Break | None:
        assert self.seal_key is not None
        expected = seal_of(self.seal_key, event)
        rewritten = "seal does not match: the event was rewritten (hash chain recomputed?)"
        if copy is not None:
            if (copy.stream_id, copy.version, copy.event_id) != (event.stream_id, event.version, event.event_id):
                return broken(f"seal is for {copy.stream_id} version {copy.version}: events were moved", "moved")
            if not hmac.compare_digest(copy.seal, expected):
                return broken(rewritten, "seal")
        if event.seal is not None and not hmac.compare_digest(event.seal, expected):
            return broken(rewritten, "seal")
        if event.seal is None and copy is None:
            return broken("no seal: the event was not appended through flp (forged?)", "unsealed")
        if copy is None and event.position <= self.mirror_head:
            return broken("no seal for it in the seal store (deleted from the seal store?)", "unsealed")
        return None

    def missing_sealed(self, seals: Iterable[SealRecord]) -> Break | None:
        """Seals beyond what the store holds: events deleted from the end of a stream or feed."""
        if self.first_break is not None:
            return self.first_break
        for s in seals:
            version = self.heads.get(s.stream_id, (0, "", 0))[0]
            if s.position > self.last_position or s.version > version:
                reason = "event is missing: it was sealed but the store no longer has it"
                self.first_break = Break(s.stream_id, s.version, s.position, reason, "missing")
                return self.first_break
        return None

    def report(self, *, sealed_checked: bool) -> VerifyReport:
        return VerifyReport(
            ok=self.first_break is None,
            events_checked=self.checked,
            streams=len(self.heads),
            head_position=self.last_position,
            sealed_checked=sealed_checked,
            first_break=self.first_break,
            heads={k: {"version": v, "hash": h, "position": p} for k, (v, h, p) in self.heads.items()},
        )


def verify_events(
    events: Iterable[RecordedEvent],
    *,
    contiguous_positions: bool = True,
    seal_key: bytes | None = None,
    seals: dict[int, SealRecord] | None = None,
    decode: bool = True,
) -> VerifyReport:
    """Verify a sequence of events in position order (the whole feed, or one stream)."""
    mirror_head = max(seals, default=0) if seals else 0
    verifier = ChainVerifier(
        contiguous_positions=contiguous_positions, seal_key=seal_key, mirror_head=mirror_head, decode=decode
    )
    for event in events:
        if verifier.feed(event, (seals or {}).get(event.position)) is not None:
            break
    if seal_key is not None and seals is not None:
        verifier.missing_sealed(sorted(seals.values(), key=lambda s: s.position))
    return verifier.report(sealed_checked=seal_key is not None)


async def verify_store(
    store: EventStore, seals: SealStore | None = None, key: bytes | None = None, job_id: str | None = None
) -> VerifyReport:
    """Recompute every stream's chain and the global feed's continuity (or one job's stream), and
    with a seal store + key check every event's seals and that no sealed event is missing."""
    use_seals = seals is not None and key is not None
    if job_id is not None:
        events = await store.read_stream(stream_id(job_id))
        stream_seals = (
            {s.position: s for s in await seals.for_stream(stream_id(job_id))} if seals and use_seals else None
        )
        return verify_events(
            events, contiguous_positions=False, seal_key=key if use_seals else None, seals=stream_seals
        )
    mirror_head = await seals.head() if seals is not None and use_seals else 0
    verifier = ChainVerifier(contiguous_positions=True, seal_key=key if use_seals else None, mirror_head=mirror_head)
    after = 0
    while True:
        page = await store.read_all(after, PAGE)
        if not page:
            beyond = await seals.range(after) if seals is not None and use_seals else []
            if not beyond:
                break
            page = await store.read_all(after, PAGE)  # committed while we read the seals?
            if not page:
                verifier.missing_sealed(beyond)  # sealed, yet no longer in the store
                break
        page_seals = {s.position: s for s in await seals.range(after, page[-1].position)} if seals and use_seals else {}
        for event in page:
            if verifier.feed(event, page_seals.get(event.position)) is not None:
                return verifier.report(sealed_checked=use_seals)
        after = page[-1].position
    return verifier.report(sealed_checked=use_seals)
