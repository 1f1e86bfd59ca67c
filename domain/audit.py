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

import functools
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from domain import training_job
from domain.envelope import GENESIS_HASH, RecordedEvent, Sealer, UndecodableEvent, canonical_json, expected_hash

BUNDLE_FORMAT = "flp-audit-bundle/1"


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


@dataclass(frozen=True, slots=True)
class SealRecord:
    """A keyed seal over one stored event: HMAC-SHA256(key, [position, stream, version, id, hash])."""

    position: int
    stream_id: str
    version: int
    event_id: str
    seal: str


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


def seal_fields(key: bytes, position: int, stream_id: str, version: int, event_id: str, digest: str) -> str:
    body = canonical_json([position, stream_id, version, event_id, digest])
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def seal_of(key: bytes, event: RecordedEvent) -> str:
    return seal_fields(key, event.position, event.stream_id, event.version, event.event_id, event.hash)


def sealer(key: bytes) -> Sealer:
    """What an event store calls to seal each event inside the write that stores it."""
    return functools.partial(seal_fields, key)


def seal_record(key: bytes, event: RecordedEvent) -> SealRecord:
    return SealRecord(event.position, event.stream_id, event.version, event.event_id, seal_of(key, event))


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


# --- time travel -------------------------------------------------------------------------------


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp; naive means UTC."""
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def version_at(events: Sequence[RecordedEvent], at: datetime) -> int:
    """The stream's version as of `at`: the last event recorded at or before it (0: none)."""
    version = 0
    for event in events:
        recorded = event.recorded_at
        if not recorded or parse_timestamp(recorded) > at:
            break
        version = event.version
    return version


def job_state(events: Iterable[RecordedEvent]) -> training_job.JobState:
    state = training_job.INITIAL
    for event in events:
        state = training_job.evolve(state, event.to_event())
    return state


def diff_states(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Changes from `before` to `after` as JSON-pointer paths with op added/removed/changed."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}/{_escape(str(key))}"
            if key not in before:
                changes.append({"path": sub, "op": "added", "before": None, "after": after[key]})
            elif key not in after:
                changes.append({"path": sub, "op": "removed", "before": before[key], "after": None})
            else:
                changes += diff_states(before[key], after[key], sub)
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for i in range(max(len(before), len(after))):
            sub = f"{path}/{i}"
            if i >= len(before):
                changes.append({"path": sub, "op": "added", "before": None, "after": after[i]})
            elif i >= len(after):
                changes.append({"path": sub, "op": "removed", "before": before[i], "after": None})
            else:
                changes += diff_states(before[i], after[i], sub)
        return changes
    if before != after or type(before) is not type(after):
        return [{"path": path or "/", "op": "changed", "before": before, "after": after}]
    return []


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


# --- bundles ------------------------------------------------------------------------------------


def bundle_lines(
    job_id: str,
    events: Sequence[RecordedEvent],
    *,
    exported_at: str,
    exported_by: str,
    seals: dict[int, SealRecord] | None = None,
    seal_key: bytes | None = None,
) -> list[str]:
    """A self-contained NDJSON bundle: header, every event (with its seal), chain head, final state,
    and a digest over all preceding lines (HMAC'd when the seal key is at hand)."""
    stream = training_job.stream_id(job_id)
    lines = [
        canonical_json(
            {
                "kind": "header",
                "format": BUNDLE_FORMAT,
                "job_id": job_id,
                "stream_id": stream,
                "events": len(events),
                "exported_at": exported_at,
                "exported_by": exported_by,
            }
        )
    ]
    for event in events:
        copy = (seals or {}).get(event.position)
        seal = copy.seal if copy is not None else event.seal
        lines.append(canonical_json({"kind": "event", "event": event.to_dict(), "seal": seal}))
    last = events[-1] if events else None
    lines.append(
        canonical_json(
            {
                "kind": "chain_head",
                "stream_id": stream,
                "version": last.version if last else 0,
                "hash": last.hash if last else GENESIS_HASH,
                "position": last.position if last else 0,
            }
        )
    )
    state = job_state(events)
    lines.append(canonical_json({"kind": "state", "version": state.version, "state": _json(state.to_dict())}))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    tail: dict[str, Any] = {"kind": "digest", "sha256": digest}
    if seal_key is not None:
        tail["hmac"] = hmac.new(seal_key, digest.encode(), hashlib.sha256).hexdigest()
    lines.append(canonical_json(tail))
    return lines


def _json(value: Any) -> Any:
    return json.loads(canonical_json(value))


@dataclass(slots=True)
class BundleReport:
    ok: bool
    job_id: str | None
    events: int
    chain_head: dict[str, Any] | None
    seals_checked: bool
    problems: list[str] = field(default_factory=list)
    first_break: Break | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "job_id": self.job_id,
            "events": self.events,
            "chain_head": self.chain_head,
            "seals_checked": self.seals_checked,
            "problems": self.problems,
            "first_break": self.first_break.to_dict() if self.first_break else None,
        }


def verify_bundle(lines: Sequence[str], seal_key: bytes | None = None) -> BundleReport:
    """Check a bundle offline: its digest, the hash chain from genesis, the chain head, that the
    final state is what the events fold to, and (with the seal key) every seal and the digest HMAC."""
    report = BundleReport(ok=False, job_id=None, events=0, chain_head=None, seals_checked=seal_key is not None)
    rows = [line for line in (raw.rstrip("\r\n") for raw in lines) if line.strip()]
    try:
        docs = [json.loads(row) for row in rows]
    except ValueError as exc:
        report.problems.append(f"not NDJSON: {exc}")
        return report
    if len(docs) < 4 or not all(isinstance(d, dict) for d in docs):
        report.problems.append("a bundle has a header, events, a chain head, a state and a digest")
        return report
    header, tail = docs[0], docs[-1]
    if header.get("kind") != "header" or header.get("format") != BUNDLE_FORMAT:
        report.problems.append(f"not a {BUNDLE_FORMAT} bundle")
        return report
    report.job_id = str(header.get("job_id"))
    if tail.get("kind") != "digest":
        report.problems.append("the digest line is missing (truncated bundle?)")
        return report
    digest = hashlib.sha256("\n".join(rows[:-1]).encode()).hexdigest()
    if tail.get("sha256") != digest:
        report.problems.append("bundle digest does not match its content (edited?)")
    if seal_key is not None:
        expected = hmac.new(seal_key, str(tail.get("sha256")).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(str(tail.get("hmac", "")), expected):
            report.problems.append("bundle HMAC does not match: not exported by a holder of this seal key")
    body = docs[1:-1]
    event_docs = [d for d in body if d.get("kind") == "event"]
    heads = [d for d in body if d.get("kind") == "chain_head"]
    states = [d for d in body if d.get("kind") == "state"]
    if len(heads) != 1 or len(states) != 1 or len(event_docs) + 2 != len(body):
        report.problems.append("expected events, one chain head and one state")
        return report
    try:
        events = [RecordedEvent.from_dict(d["event"]) for d in event_docs]
    except (KeyError, TypeError, ValueError) as exc:
        report.problems.append(f"malformed event: {exc}")
        return report
    report.events = len(events)
    if header.get("events") != len(events):
        report.problems.append(f"header says {header.get('events')} events, bundle has {len(events)}")
    stream = training_job.stream_id(report.job_id)
    stray = next((e for e in events if e.stream_id != stream), None)
    if stray is not None:
        report.problems.append(f"event at position {stray.position} belongs to {stray.stream_id}, not {stream}")
    seals = {
        e.position: SealRecord(e.position, e.stream_id, e.version, e.event_id, str(d.get("seal") or ""))
        for e, d in zip(events, event_docs, strict=True)
        if d.get("seal")
    }
    chain = verify_events(events, contiguous_positions=False, seal_key=seal_key, seals=seals if seal_key else None)
    report.first_break = chain.first_break
    if chain.first_break is not None:
        report.problems.append(f"broken chain at {chain.first_break}")
    head = heads[0]
    report.chain_head = {k: head.get(k) for k in ("stream_id", "version", "hash", "position")}
    last = events[-1] if events else None
    actual_head = (last.version, last.hash) if last else (0, GENESIS_HASH)
    if (head.get("version"), head.get("hash")) != actual_head:
        report.problems.append("chain head does not match the last event")
    if chain.first_break is None:
        try:
            folded = _json(job_state(events).to_dict())
        except Exception as exc:  # an event that no longer decodes
            report.problems.append(f"events do not fold to a state: {exc}")
        else:
            if folded != states[0].get("state"):
                report.problems.append("the final state is not what the events fold to")
    report.ok = not report.problems
    return report
