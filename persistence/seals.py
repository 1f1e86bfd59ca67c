"""Seals: an HMAC under a key kept outside every store, over each event's position, stream,
version, id and hash. Written by the store with the event; copied to the seal store."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from persistence.encoding import canonical_json
from persistence.records import RecordedEvent

Sealer = Callable[[int, str, int, str, str], str]  # (position, stream, version, event id, hash) -> seal


@dataclass(frozen=True, slots=True)
class SealRecord:
    """A keyed seal over one stored event: HMAC-SHA256(key, [position, stream, version, id, hash])."""

    position: int
    stream_id: str
    version: int
    event_id: str
    seal: str


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
