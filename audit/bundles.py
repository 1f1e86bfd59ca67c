"""Self-contained job bundles (NDJSON) for auditors: every event with its seal, the chain head,
the job's final state and a digest; checked offline by `verify_bundle`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from audit.time_travel import job_state
from audit.verify import Break, verify_events
from domain import training_job
from domain.training_job import stream_id
from persistence.chain import GENESIS_HASH
from persistence.encoding import canonical_json
from persistence.ports import EventStore, SealStore
from persistence.records import RecordedEvent
from persistence.seals import SealRecord

BUNDLE_FORMAT = "flp-audit-bundle/1"


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
    version = events[-1].version if events else 0
    state = job_state(events).to_dict(version)
    lines.append(canonical_json({"kind": "state", "version": version, "state": _json(state)}))
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
    if docs and isinstance(docs[-1], dict) and docs[-1].get("kind") == "signature":
        rows, docs = rows[:-1], docs[:-1]  # checked against a public key by audit.signing
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
            folded = _json(job_state(events).to_dict(events[-1].version if events else 0))
        except Exception as exc:  # an event that no longer decodes
            report.problems.append(f"events do not fold to a state: {exc}")
        else:
            if folded != states[0].get("state"):
                report.problems.append("the final state is not what the events fold to")
    report.ok = not report.problems
    return report


async def export_bundle(
    store: EventStore, seals: SealStore | None, key: bytes | None, job_id: str, exported_by: str
) -> list[str] | None:
    """The job's NDJSON bundle lines, or None when there is no such job."""
    events = await store.read_stream(stream_id(job_id))
    if not events:
        return None
    by_position = {s.position: s for s in await seals.for_stream(stream_id(job_id))} if seals is not None else None
    return bundle_lines(
        job_id,
        events,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        exported_by=exported_by,
        seals=by_position,
        seal_key=key,
    )
