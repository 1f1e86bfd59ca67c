"""Upcasters: turn a stored event of an old schema version into the current one, on read.

Stored events are never rewritten. When an event's schema changes, bump its `schema_version`
and register a function here from the old (type, version) to the next version's payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain import legacy_events  # noqa: F401  (the old classes: published schemas, kept readable)

Payload = dict[str, Any]
Upcaster = Callable[[Payload], tuple[str, Payload]]

# (type, schema_version) -> function giving (type, payload) at schema_version + 1


def _job_started_v1(data: Payload) -> tuple[str, Payload]:
    """v1 recorded no provenance: such a job is not re-executable."""
    return "JobStarted", {**data, "provenance": None}


def _client_update_v1(data: Payload) -> tuple[str, Payload]:
    """v1 kept no update artifact, weight or contribution figures."""
    return "ClientUpdateReceived", {
        **data,
        "update_sha256": None,
        "weight": None,
        "update_norm": None,
        "cosine_to_aggregate": None,
    }


def _round_completed_v1(data: Payload) -> tuple[str, Payload]:
    """v1 kept no strategy state artifact."""
    return "RoundCompleted", {**data, "strategy_state_sha256": None}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("RoundCompleted", 1): _round_completed_v1,
    ("JobStarted", 1): _job_started_v1,
    ("ClientUpdateReceived", 1): _client_update_v1,
}


def upcast(type_name: str, schema_version: int, data: Payload) -> tuple[str, Payload]:
    while (step := UPCASTERS.get((type_name, schema_version))) is not None:
        type_name, data = step(data)
        schema_version += 1
    return type_name, data
