"""The storage ports: the event store (what the write side, projections, relay and runtime need),
the seal store, model artifacts, and users/API keys. Adapters (SQLite, MongoDB, files, GridFS)
implement them; the contract tests in tests/contract check every event store adapter.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.roles import Role
from persistence.records import NewEvent, RecordedEvent
from persistence.seals import SealRecord

ANY_VERSION: int | None = None
NO_STREAM = 0


class ConcurrencyError(Exception):
    """The stream moved on since the caller read it: expected version != current version."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream_id} is at version {actual}, expected {expected}")
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(Exception):
    """An idempotency key was used before for a different stream."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    stream_id: str
    version: int
    events: list[RecordedEvent]
    duplicate: bool = False  # True when an idempotency key matched an earlier append
    group_size: int = 0  # appends committed together with this one (stores that group commits)


class EventStore(Protocol):
    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append atomically. `expected_version` 0 = new stream, None = any; else must match."""
        ...

    async def find_idempotent(self, idempotency_key: str) -> AppendResult | None:
        """The earlier append made with this key, if any."""
        ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, to_version: int | None = None
    ) -> list[RecordedEvent]: ...

    async def stream_version(self, stream_id: str) -> int: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with position > after_position in order; never skips a committed event."""
        ...

    async def head_position(self) -> int: ...

    def subscribe(self, after_position: int = 0, batch_size: int = 1000) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of the global feed, forever; waits for the next commit when caught up."""
        ...

    async def close(self) -> None: ...


class SealStore(Protocol):
    """Keyed seals (HMACs) over appended events, kept apart from the store they vouch for."""

    async def put(self, seals: list[SealRecord]) -> None: ...

    async def range(self, after_position: int, up_to: int | None = None) -> list[SealRecord]:
        """Seals with after_position < position <= up_to, in position order."""
        ...

    async def for_stream(self, stream_id: str) -> list[SealRecord]: ...

    async def head(self) -> int: ...

    async def close(self) -> None: ...


class ArtifactStore(Protocol):
    """Content-addressed blobs: the key of some bytes is their sha256 (lowercase hex)."""

    async def put(self, data: bytes) -> str:
        """Store the bytes (idempotent) and return their sha256."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes stored under `sha256`; KeyError if absent."""
        ...

    async def exists(self, sha256: str) -> bool: ...


# --- users and API keys ----------------------------------------------------------------------


class AlreadyExists(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    roles: frozenset[Role]
    created_at: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A service credential: `client_id` + a secret (stored as sha256; secrets are random, 256 bits)."""

    client_id: str
    secret_sha256: str
    name: str
    roles: frozenset[Role]
    created_at: str
    revoked: bool = False


class UserStore(Protocol):
    async def get_user(self, name: str) -> UserRecord | None: ...

    async def add_user(self, user: UserRecord) -> None:
        """Raises AlreadyExists when the name is taken."""
        ...

    async def list_users(self) -> list[UserRecord]: ...

    async def update_user(self, user: UserRecord) -> bool:
        """Replace an existing user's hash/roles/disabled flag; False when there is no such user."""
        ...

    async def delete_user(self, name: str) -> bool: ...

    async def add_api_key(self, key: ApiKeyRecord) -> None: ...

    async def get_api_key(self, client_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, client_id: str) -> bool: ...

    async def close(self) -> None: ...


# --- leases: one owner per background service across replicas -----------------------------------


class FencedOut(Exception):
    """A write made under a lease that has since passed to another owner (a higher fencing
    token wrote first): refused, never applied. The writer has lost ownership and must stop."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Ownership of a background service until `expires_at` (seconds since the epoch). `token`
    (the fencing token) grows every time the lease changes hands: writes made under it carry it,
    and a store refuses a write whose token is older than one it has seen."""

    name: str
    owner: str
    token: int
    expires_at: float


@dataclass
class Ownership:
    """What a service run under a lease knows of it: the fencing token its writes carry and
    until when (this process' monotonic clock) it may still act. A service run without a lease
    (one process, a CLI tool) has the default: no token, held for ever."""

    token: int | None = None
    valid_until: float = math.inf

    def held(self, margin_s: float = 0.0) -> bool:
        """Still the owner `margin_s` seconds from now (ask before an action that cannot be fenced)."""
        return time.monotonic() + margin_s < self.valid_until


class LeaseStore(Protocol):
    async def acquire(self, name: str, owner: str, ttl_s: float) -> Lease | None:
        """Take the lease if nobody holds it or the holder's time ran out (a new, higher token),
        or keep it if `owner` holds it (same token); None while another owner holds it."""
        ...

    async def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend a lease nobody else took (same owner and token, even past its expiry: expiry lets
        another replica take over, it does not stop a lone owner whose renewal came late); None
        when another owner took it."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up at once (a clean stop): another replica may take it right away."""
        ...

    async def holder(self, name: str) -> Lease | None:
        """Who holds the lease now (None: nobody, or the last holder's time ran out)."""
        ...

    async def close(self) -> None: ...
