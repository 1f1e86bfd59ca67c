"""The stored form of an event (envelope) and the per-stream hash chain over it. Pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from domain.events import Event, event_class
from domain.upcasting import upcast

GENESIS_HASH = "0" * 64


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

    @property
    def recorded_at(self) -> str:
        value: str = self.metadata.get("recorded_at", "")
        return value

    def to_event(self) -> Event:
        """Decode the payload to the current event class, upcasting old schema versions."""
        type_name, data = upcast(self.type, self.schema_version, self.data)
        return event_class(type_name).model_validate(data)

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
        )


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8. The hash chain is computed over it.
    Non-finite floats are refused at the edges (metrics are finite), never silently changed."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


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


@dataclass(frozen=True, slots=True)
class ChainedEvent:
    """An event linked into its stream's chain, with the canonical texts its hash covers."""

    event: RecordedEvent
    data_json: str
    metadata_json: str


def link(
    stream_id: str,
    events: Sequence[NewEvent],
    version: int,
    first_position: int,
    prev_hash: str,
    recorded_at: str,
) -> list[ChainedEvent]:
    """Give new events their versions, positions, `recorded_at` and chain links: the one place
    every event store turns an append into stored envelopes."""
    out: list[ChainedEvent] = []
    for offset, new in enumerate(events):
        metadata = {**new.metadata, "recorded_at": recorded_at}
        data_json = canonical_json(new.data)
        metadata_json = canonical_json(metadata)
        v = version + offset + 1
        digest = chain_hash_encoded(
            prev_hash, stream_id, v, new.event_id, new.type, new.schema_version, data_json, metadata_json
        )
        recorded = RecordedEvent(
            new.event_id,
            stream_id,
            v,
            first_position + offset,
            new.type,
            new.schema_version,
            new.data,
            metadata,
            prev_hash,
            digest,
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
