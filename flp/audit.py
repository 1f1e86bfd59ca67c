"""Audit use cases: seal appends, verify the store (or one job), export a job's bundle, time travel
by timestamp, and diffs between versions."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commands.ports import EventStore, SealStore
from domain import audit
from domain.audit import SealRecord, VerifyReport
from domain.envelope import RecordedEvent
from domain.training_job import JobState, stream_id
from flp.secrets import load_or_create_secret
from flp.settings import Settings

PAGE = 5000


def seal_key_file(settings: Settings) -> Path:
    return settings.audit_seal_key_file or settings.data_dir / "secrets" / "audit-seal.key"


def seal_key(settings: Settings) -> bytes:
    """The HMAC key for seals; generated (mode 0600) on first use. Keep it off the store's host in
    production (FLP_AUDIT_SEAL_KEY_FILE on a separate volume or secret mount)."""
    return load_or_create_secret(seal_key_file(settings))


async def open_seal_store(settings: Settings) -> SealStore | None:
    """The seal store (None with FLP_AUDIT_SEAL=false): a copy of every event's seal kept apart
    from the events, so that deleting the newest events (with their seals) shows."""
    if not settings.audit_seal:
        return None
    from adapters.sqlite_audit_seals import SqliteSealStore

    return await SqliteSealStore(settings.data_dir / "audit-seals.db", settings.sqlite_synchronous).open()


class SealMirror:
    """Copies each event's seal (written with the event, in the same transaction) into the seal
    store. A consumer of the feed like any other: after a crash it simply copies the tail the
    previous process did not get to, at the next start, with no operator step. A seal is copied
    only if it is valid under the key; a forged event's bogus seal is left for `verify` to report."""

    def __init__(self, store: EventStore, seals: SealStore, key: bytes) -> None:
        self.store = store
        self.seals = seals
        self._key = key
        self.position = 0

    async def catch_up(self) -> int:
        self.position = await self.seals.head()
        while batch := await self.store.read_all(self.position, PAGE):
            await self._copy(batch)
        return self.position

    async def run(self) -> None:
        await self.catch_up()
        async for batch in self.store.subscribe(self.position, PAGE):
            await self._copy(batch)

    async def _copy(self, batch: list[RecordedEvent]) -> None:
        copies = [
            SealRecord(e.position, e.stream_id, e.version, e.event_id, e.seal)
            for e in batch
            if e.seal is not None and hmac.compare_digest(e.seal, audit.seal_of(self._key, e))
        ]
        await self.seals.put(copies)
        self.position = batch[-1].position

    def info(self) -> dict[str, Any]:
        return {"position": self.position}


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
        return audit.verify_events(
            events, contiguous_positions=False, seal_key=key if use_seals else None, seals=stream_seals
        )
    mirror_head = await seals.head() if seals is not None and use_seals else 0
    verifier = audit.ChainVerifier(
        contiguous_positions=True, seal_key=key if use_seals else None, mirror_head=mirror_head
    )
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


async def export_bundle(
    store: EventStore, seals: SealStore | None, key: bytes | None, job_id: str, exported_by: str
) -> list[str] | None:
    """The job's NDJSON bundle lines, or None when there is no such job."""
    events = await store.read_stream(stream_id(job_id))
    if not events:
        return None
    by_position = {s.position: s for s in await seals.for_stream(stream_id(job_id))} if seals is not None else None
    return audit.bundle_lines(
        job_id,
        events,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        exported_by=exported_by,
        seals=by_position,
        seal_key=key,
    )


async def state_as_of(store: EventStore, job_id: str, at: datetime) -> tuple[int, JobState, str | None]:
    """(version, state, recorded_at of that version) of the job as of a moment."""
    events = await store.read_stream(stream_id(job_id))
    version = audit.version_at(events, at)
    chosen = events[:version]
    return version, audit.job_state(chosen), chosen[-1].recorded_at if chosen else None


async def diff_versions(store: EventStore, job_id: str, from_version: int, to_version: int | None) -> dict[str, Any]:
    """What changed in the job's state between two versions, and the events that changed it."""
    events = await store.read_stream(stream_id(job_id))
    head = events[-1].version if events else 0
    frm = min(from_version, head)
    to = head if to_version is None else min(to_version, head)
    lo, hi = sorted((frm, to))
    before = audit.job_state(events[:frm]).to_dict()
    after = audit.job_state(events[:to]).to_dict()
    return {
        "stream_id": stream_id(job_id),
        "from_version": frm,
        "to_version": to,
        "changes": audit.diff_states(before, after),
        "events": [
            {
                "version": e.version,
                "position": e.position,
                "type": e.type,
                "actor": e.metadata.get("actor"),
                "recorded_at": e.recorded_at,
            }
            for e in events[lo:hi]
        ],
    }


async def adopt_unsealed(store: EventStore, seals: SealStore, key: bytes) -> int:
    """Seal the events that have no seal (a data dir from before sealing): a trust decision, taken
    only when their hash chain and the feed verify. Returns how many events were sealed."""
    chain = await verify_store(store)
    if not chain.ok:
        raise ValueError(f"the hash chain is broken, nothing sealed: {chain.first_break}")
    adopted, after = 0, 0
    while page := await store.read_all(after, PAGE):
        have = {s.position for s in await seals.range(after, page[-1].position)}
        missing = [audit.seal_record(key, e) for e in page if e.position not in have]
        await seals.put(missing)
        adopted += len(missing)
        after = page[-1].position
    return adopted
