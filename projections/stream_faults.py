"""stream_faults: streams whose events no longer decode (an old bug, a manual edit of the store).

Such a stream is frozen on the read side: its documents keep the state before the bad event,
and neither that event nor any later one of the stream is applied, while every other stream
goes on. The fault is a read model like any other (committed with its checkpoint, rebuilt to the
same content), so the runner knows a frozen stream again after a restart; /health lists them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from domain.events import Event
from persistence.records import RecordedEvent
from projections.ports import Doc

NAME = "stream_faults"


@dataclass(frozen=True, slots=True)
class StreamFault:
    stream_id: str
    version: int
    position: int
    type: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: Doc) -> StreamFault:
        return cls(doc["stream_id"], int(doc["version"]), int(doc["position"]), doc["type"], doc["reason"])


class StreamFaults:
    """Fed only with StreamFault records by the runner (never with domain events)."""

    name = NAME
    fresh_on: tuple[type[Event], ...] = ()

    def keys(self, fault: Any) -> list[str]:
        return [fault.stream_id] if isinstance(fault, StreamFault) else []

    def apply(self, doc: Doc | None, fault: Any, recorded: RecordedEvent) -> Doc | None:
        return fault.to_dict() if isinstance(fault, StreamFault) else doc
