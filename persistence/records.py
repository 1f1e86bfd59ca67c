"""The stored form of an event: what is about to be appended (NewEvent) and what a store holds
and hands back (RecordedEvent). Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import ValidationError

from domain.events import Event, event_class
from domain.upcasting import upcast


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
