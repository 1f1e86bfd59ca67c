"""The stores' clock: when an event was recorded, as an RFC 3339 UTC timestamp."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
