"""The stored form of an event (envelope) and the per-stream hash chain over it. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from domain.events import Event, event_class
from domain.upcasting import upcast

GENESIS_HASH = "0" * 64
MAX_APPEND_BYTES = 12 * 1024 * 1024  # encoded data + metadata of one append (MongoDB: 16 MB a document)


class UnstorableEvent(ValueError):
    """An append the store refuses because its events leave the value space (domain.values): they
    would not read back as the same events. Refused for that append alone; nothing is written."""


class UndecodableEvent(ValueError):
    """A stored event that no longer decodes to its event class (an old bug, a manual edit)."""

    def __init__(self, stream_id: str, version: int, position: int, reason: str) -> None:
        super().__init__(f"event at position {position} ({stream_id} version {version}) does not decode: {reason}")
        self.stream_id = stream_id
        self.version = version
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: the domain event plus who/why metadata."""

    event_id: str
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]

    @classmethod
    def from_event(cls, event_id: str, event: Event, metadata: dict[str, Any]) -> NewEvent:
        return cls(event_id, event.type, event.schema_version, event.model_dump(mode="json"), metadata)


class RecordedEvent(NamedTuple):
    """An event as stored: envelope fields, payload and the chain link. (A named tuple: the
    global feed decodes hundreds of thousands of these a second.)"""

    event_id: str
    stream_id: str
    version: int
    position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str
    seal: str | None = None  # HMAC over (position, stream, version, id, hash), written with the event

    @property
    def recorded_at(self) -> str:
        value: str = self.metadata.get("recorded_at", "")
        return value

    def to_event(self) -> Event:
        """Decode the payload to the current event class, upcasting old schema versions."""
        try:
            type_name, data = upcast(self.type, self.schema_version, self.data)
            return event_class(type_name).model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            reason = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            raise UndecodableEvent(self.stream_id, self.version, self.position, reason) from exc
        except Exception as exc:  # unknown type, a failing upcaster
            raise UndecodableEvent(self.stream_id, self.version, self.position, repr(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream_id": self.stream_id,
            "version": self.version,
            "position": self.position,
            "type": self.type,
            "schema_version": self.schema_version,
            "data": self.data,
            "metadata": self.metadata,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
            "seal": self.seal,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecordedEvent:
        return cls(
            event_id=d["event_id"],
            stream_id=d["stream_id"],
            version=int(d["version"]),
            position=int(d["position"]),
            type=d["type"],
            schema_version=int(d["schema_version"]),
            data=d["data"],
            metadata=d["metadata"],
            prev_hash=d["prev_hash"],
            hash=d["hash"],
            seal=d.get("seal"),
        )


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8. The hash chain is computed over it.
    Non-finite floats are refused at the edges (metrics are finite), never silently changed."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def checked_json(value: Any, what: str) -> str:
    """`canonical_json`, refusing any value it would not read back as itself: integers beyond
    ±(2**53-1) (orjson's strict mode), non-finite floats (JSON has none: they would come back as
    null), lone surrogates, nesting deeper than JSON encoders allow."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER).decode()
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise UnstorableEvent(f"{what}: {exc}") from None
    if orjson.loads(text) != value:
        raise UnstorableEvent(f"{what}: a value does not read back as itself (NaN or Infinity?)")
    return text


def chain_hash(
    prev_hash: str,
    stream_id: str,
    version: int,
    event_id: str,
    type_name: str,
    schema_version: int,
    data: dict[str, Any],
    metadata: dict[str, Any],
) -> str:
    """sha256 over the canonical encoding of one event linked to its predecessor in the stream."""
    return chain_hash_encoded(
        prev_hash,
        stream_id,
        version,
        event_id,
        type_name,
        schema_version,
        canonical_json(data),
        canonical_json(metadata),
    )


def chain_hash_encoded(
    prev_hash: str,
    stream_id: str,
    version: int,
    event_id: str,
    type_name: str,
    schema_version: int,
    data_json: str,
    metadata_json: str,
) -> str:
    """`chain_hash` for a payload already in canonical JSON (what the stores write anyway)."""
    header = canonical_json([prev_hash, stream_id, version, event_id, type_name, schema_version])
    return hashlib.sha256(f"{header}\n{data_json}\n{metadata_json}".encode()).hexdigest()


Sealer = Callable[[int, str, int, str, str], str]  # (position, stream, version, event id, hash) -> seal


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A new event whose payload is checked and encoded: what `link` turns into a stored one."""

    new: NewEvent
    data_json: str


def encode(events: Sequence[NewEvent]) -> list[EncodedEvent]:
    """Check and encode an append before anything of it is written (UnstorableEvent if it cannot
    be stored and read back unchanged)."""
    out: list[EncodedEvent] = []
    size = 0
    last_meta: dict[str, Any] | None = None
    meta_size = 0
    for new in events:
        data_json = checked_json(new.data, f"event {new.type} data")
        if last_meta is None or new.metadata != last_meta:  # a command's events share their metadata
            meta_size = len(checked_json(new.metadata, f"event {new.type} metadata"))
            last_meta = new.metadata
        size += len(data_json) + meta_size
        if size > MAX_APPEND_BYTES:
            raise UnstorableEvent(f"the append is larger than {MAX_APPEND_BYTES} bytes encoded")
        out.append(EncodedEvent(new, data_json))
    return out


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """An event linked into its stream's chain, with the canonical texts its hash covers."""

    event: RecordedEvent
    data_json: str
    metadata_json: str


def link(
    stream_id: str,
    events: Sequence[EncodedEvent],
    version: int,
    first_position: int,
    prev_hash: str,
    recorded_at: str,
    sealer: Sealer | None = None,
) -> list[ChainedEvent]:
    """Give encoded events their versions, positions, `recorded_at`, chain links and seals: the
    one place every event store turns an append into stored envelopes."""
    out: list[ChainedEvent] = []
    for offset, encoded in enumerate(events):
        new = encoded.new
        metadata = {**new.metadata, "recorded_at": recorded_at}
        data_json = encoded.data_json
        metadata_json = canonical_json(metadata)
        v = version + offset + 1
        position = first_position + offset
        digest = chain_hash_encoded(
            prev_hash, stream_id, v, new.event_id, new.type, new.schema_version, data_json, metadata_json
        )
        recorded = RecordedEvent(
            new.event_id,
            stream_id,
            v,
            position,
            new.type,
            new.schema_version,
            new.data,
            metadata,
            prev_hash,
            digest,
            sealer(position, stream_id, v, new.event_id, digest) if sealer is not None else None,
        )
        out.append(ChainedEvent(recorded, data_json, metadata_json))
        prev_hash = digest
    return out


def expected_hash(event: RecordedEvent) -> str:
    return chain_hash(
        event.prev_hash,
        event.stream_id,
        event.version,
        event.event_id,
        event.type,
        event.schema_version,
        event.data,
        event.metadata,
    )
