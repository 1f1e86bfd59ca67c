"""What a projection is: a name, the documents an event touches, and a pure apply function."""

from __future__ import annotations

from typing import Protocol

from domain.events import Event
from persistence.records import RecordedEvent
from projections.ports import Doc


class Projection(Protocol):
    name: str
    # events after which the document is what `apply` makes of them alone, whatever it was given
    # (a job's JobCreated): the runner does not look up the document of a key whose first event
    # in a batch is one of them (tests/test_projection_rebuild.py checks the claim)
    fresh_on: tuple[type[Event], ...]

    def keys(self, event: Event) -> list[str]:
        """Keys of the documents this event changes (empty: not interested)."""
        ...

    def apply(self, doc: Doc | None, event: Event, recorded: RecordedEvent) -> Doc | None:
        """The document after the event, deterministic in (doc, event): rebuilds must equal live
        runs. It may change `doc` in place: the runner hands each projection its own copies."""
        ...
