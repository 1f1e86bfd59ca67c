"""Upcasters: turn a stored event of an old schema version into the current one, on read.

Stored events are never rewritten. When an event's schema changes, bump its `schema_version`
and register a function here from the old (type, version) to the next version's payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]
Upcaster = Callable[[Payload], tuple[str, Payload]]

# (type, schema_version) -> function giving (type, payload) at schema_version + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(type_name: str, schema_version: int, data: Payload) -> tuple[str, Payload]:
    while (step := UPCASTERS.get((type_name, schema_version))) is not None:
        type_name, data = step(data)
        schema_version += 1
    return type_name, data
