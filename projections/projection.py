"""What a projection is: a name, the documents an event touches, and a pure apply function."""

from __future__ import annotations

from typing import Protocol

from domain.events import Event
from persistence.records import RecordedEvent
from projections.ports import Doc


class Projection(Protocol):
    name: str

    def keys(self, event: Event) -> list[str]:
        """Keys of the documents this event changes (empty: not interested)."""
        ...

    def apply(self, doc: Doc | None, event: Event, recorded: RecordedEvent) -> Doc | None:
        """The document after the event, deterministic in (doc, event): rebuilds must equal live
        runs. A new document: `doc` and everything in it stay as they are (copy what changes),
        because the runner keeps the documents it committed and hands them, as they are, to the
        next batch and to live subscribers."""
        ...
