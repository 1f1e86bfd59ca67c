"""What auditors work with: the log, its seal store and the key that checks the seals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit import bundles, signing, time_travel
from audit.verify import VerifyReport, verify_store
from domain.training_job import JobState, stream_id
from persistence.ports import EventStore, SealStore
from persistence.records import RecordedEvent


@dataclass(frozen=True)
class AuditTrail:
    store: EventStore
    seals: SealStore | None = None
    key: bytes | None = None  # the seal key (kept outside every store); None: sealing is off
    signing_key: bytes | None = None  # Ed25519 private key (raw): bundles are signed (audit.signing)

    async def verify(self, job_id: str | None = None) -> VerifyReport:
        return await verify_store(self.store, self.seals, self.key, job_id)

    async def bundle(self, job_id: str, exported_by: str) -> list[str] | None:
        lines = await bundles.export_bundle(self.store, self.seals, self.key, job_id, exported_by)
        if lines is None or self.signing_key is None:
            return lines
        return signing.sign_bundle(lines, self.signing_key)

    def public_key(self) -> bytes | None:
        return signing.public_key_of(self.signing_key) if self.signing_key is not None else None

    async def state_as_of(self, job_id: str, at: datetime) -> tuple[int, JobState, str | None]:
        return await time_travel.state_as_of(self.store, job_id, at)

    async def diff(self, job_id: str, from_version: int, to_version: int | None) -> dict[str, Any]:
        return await time_travel.diff_versions(self.store, job_id, from_version, to_version)

    async def history(self, job_id: str, limit: int = 1000) -> list[RecordedEvent]:
        """The job's first `limit` events as stored: actor, time, position, hash and seal."""
        return await self.store.read_stream(stream_id(job_id), 1, limit)
