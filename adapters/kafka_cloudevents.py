"""RecordedEvent <-> CloudEvents 1.0 structured JSON, as published on the Kafka topic.

One Kafka message per stored event:
- key: the stream id (so each job's / client's events stay in one partition, in order);
- value: a structured-mode CloudEvent (JSON event format, `application/cloudevents+json`);
- headers: `content-type` (Kafka protocol binding, structured mode) and the W3C `traceparent`
  of the command that caused the event, when it had one.

CloudEvent attributes:
  specversion "1.0", id = event id, source, type `flp.<EventType>.v<schema_version>`,
  subject = stream id, time = recorded_at, datacontenttype `application/json`, data = payload as
  stored (never upcast: integrators get the version the type names).
Extension attributes (lowercase alphanumeric, as the spec requires):
  position (global, gap-free order), streamversion (1-based per stream), schemaversion,
  correlationid, causationid, actor, prevhash, hash (the per-stream tamper-evident chain),
  metadata (the stored metadata as JSON text with sorted keys, so the RecordedEvent can be
  rebuilt exactly and the chain verified: hash = sha256 of domain.envelope.canonical_json over
  [prevhash, subject, streamversion, id, type name, schema version, data, parsed metadata]).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from persistence.records import RecordedEvent

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "/flp"
DATA_CONTENT_TYPE = "application/json"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
CONTENT_TYPE_HEADER = "content-type"
TRACEPARENT_HEADER = "traceparent"
TYPE_PREFIX = "flp."

_TYPE_RE = re.compile(r"^flp\.(?P<type>[A-Za-z][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)$")

Headers = list[tuple[str, bytes]]


def cloudevent_type(type_name: str, schema_version: int) -> str:
    return f"{TYPE_PREFIX}{type_name}.v{schema_version}"


def parse_cloudevent_type(ce_type: str) -> tuple[str, int]:
    """`flp.JobCreated.v1` -> ("JobCreated", 1)."""
    match = _TYPE_RE.match(ce_type)
    if match is None:
        raise ValueError(f"not an flp CloudEvent type: {ce_type!r}")
    return match["type"], int(match["version"])


def to_cloudevent(event: RecordedEvent, source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    meta = event.metadata
    ce: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.event_id,
        "source": source,
        "type": cloudevent_type(event.type, event.schema_version),
        "subject": event.stream_id,
        "time": event.recorded_at,
        "datacontenttype": DATA_CONTENT_TYPE,
        "position": event.position,
        "streamversion": event.version,
        "schemaversion": event.schema_version,
        "correlationid": str(meta.get("correlation_id") or event.event_id),
        "causationid": str(meta.get("causation_id") or event.event_id),
        "actor": str(meta.get("actor") or ""),
        "prevhash": event.prev_hash,
        "hash": event.hash,
        "metadata": orjson.dumps(meta, option=orjson.OPT_SORT_KEYS).decode(),
        "data": event.data,
    }
    return ce


def message_key(event: RecordedEvent) -> bytes:
    return event.stream_id.encode()


def message_value(event: RecordedEvent, source: str = DEFAULT_SOURCE) -> bytes:
    return orjson.dumps(to_cloudevent(event, source))


_CONTENT_TYPE = (CONTENT_TYPE_HEADER, CLOUDEVENTS_CONTENT_TYPE.encode())


def message_headers(event: RecordedEvent) -> Headers:
    """Kafka headers of an event's message (a new list on every call)."""
    traceparent = _traceparent(event)
    if traceparent is None:
        return [_CONTENT_TYPE]
    return [_CONTENT_TYPE, (TRACEPARENT_HEADER, traceparent.encode())]


def _traceparent(event: RecordedEvent) -> str | None:
    traceparent = event.metadata.get("traceparent")
    return traceparent if isinstance(traceparent, str) and traceparent else None


class MessageMapper:
    """Kafka key, value and headers of stored events, for one producer (the relay owns one).

    The same messages as `message_key` / `message_value` / `message_headers`, but header lists
    are reused: the events of one command share a traceparent, so a busy relay would otherwise
    build the same list for every event. Reused lists are shared between messages (aiokafka
    only reads them; callers must not modify them). At most `max_traceparents` are kept, the
    oldest dropped first, so memory stays bounded however many commands pass."""

    def __init__(self, source: str = DEFAULT_SOURCE, max_traceparents: int = 10_000) -> None:
        if max_traceparents < 1:
            raise ValueError("max_traceparents must be at least 1")
        self.source = source
        self._max_traceparents = max_traceparents
        self._plain: Headers = [_CONTENT_TYPE]
        self._traced: dict[str, Headers] = {}  # insertion order = age

    @property
    def cached_traceparents(self) -> int:
        return len(self._traced)

    def key(self, event: RecordedEvent) -> bytes:
        return message_key(event)

    def value(self, event: RecordedEvent) -> bytes:
        return message_value(event, self.source)

    def headers(self, event: RecordedEvent) -> Headers:
        traceparent = _traceparent(event)
        if traceparent is None:
            return self._plain
        headers = self._traced.get(traceparent)
        if headers is None:
            if len(self._traced) >= self._max_traceparents:
                del self._traced[next(iter(self._traced))]
            headers = self._traced[traceparent] = [_CONTENT_TYPE, (TRACEPARENT_HEADER, traceparent.encode())]
        return headers


def decode_value(value: bytes) -> dict[str, Any]:
    ce = orjson.loads(value)
    if not isinstance(ce, dict) or ce.get("specversion") != SPEC_VERSION:
        raise ValueError("not a CloudEvents 1.0 structured JSON message")
    return ce


def from_cloudevent(ce: dict[str, Any]) -> RecordedEvent:
    """The stored event a relay message was made from (exact when `metadata` is present)."""
    type_name, schema_version = parse_cloudevent_type(str(ce["type"]))
    raw_meta = ce.get("metadata")
    if isinstance(raw_meta, str):
        metadata: dict[str, Any] = orjson.loads(raw_meta)
    else:  # a producer that left the metadata extension out: rebuild what the attributes carry
        metadata = {
            "actor": ce.get("actor", ""),
            "correlation_id": ce.get("correlationid"),
            "causation_id": ce.get("causationid"),
            "recorded_at": ce.get("time", ""),
        }
    return RecordedEvent(
        event_id=str(ce["id"]),
        stream_id=str(ce["subject"]),
        version=int(ce["streamversion"]),
        position=int(ce["position"]),
        type=type_name,
        schema_version=schema_version,
        data=ce["data"],
        metadata=metadata,
        prev_hash=str(ce.get("prevhash", "")),
        hash=str(ce.get("hash", "")),
    )


def header_value(headers: Any, name: str) -> str | None:
    """A header's text from aiokafka / confluent-kafka header lists (None if absent)."""
    for key, value in headers or ():
        if key.lower() == name and value is not None:
            return bytes(value).decode()
    return None
