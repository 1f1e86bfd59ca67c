"""The per-stream hash chain: every event's `hash` is sha256 over its canonical encoding linked to
its predecessor's; `link` is the one place every store turns an append into stored envelopes."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from persistence.encoding import EncodedEvent, canonical_json
from persistence.records import RecordedEvent
from persistence.seals import Sealer

GENESIS_HASH = "0" * 64


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
