"""The canonical encoding the hash chain covers, and the check that an append can be stored and
read back unchanged (the event value space of domain.values, enforced on the encoded bytes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from persistence.records import NewEvent

MAX_APPEND_BYTES = 12 * 1024 * 1024  # encoded data + metadata of one append (MongoDB: 16 MB a document)


class UnstorableEvent(ValueError):
    """An append the store refuses because its events leave the value space (domain.values): they
    would not read back as the same events. Refused for that append alone; nothing is written."""


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
