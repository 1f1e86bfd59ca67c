"""Time travel: a job's state as of a version or a moment, and what changed between two versions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from domain import training_job
from domain.training_job import JobState, stream_id
from persistence.ports import EventStore
from persistence.records import RecordedEvent


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp; naive means UTC."""
    parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def version_at(events: Sequence[RecordedEvent], at: datetime) -> int:
    """The stream's version as of `at`: the last event recorded at or before it (0: none)."""
    version = 0
    for event in events:
        recorded = event.recorded_at
        if not recorded or parse_timestamp(recorded) > at:
            break
        version = event.version
    return version


def job_state(events: Iterable[RecordedEvent]) -> training_job.JobState:
    state = training_job.INITIAL
    for event in events:
        state = training_job.evolve(state, event.to_event())
    return state


def diff_states(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Changes from `before` to `after` as JSON-pointer paths with op added/removed/changed."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}/{_escape(str(key))}"
            if key not in before:
                changes.append({"path": sub, "op": "added", "before": None, "after": after[key]})
            elif key not in after:
                changes.append({"path": sub, "op": "removed", "before": before[key], "after": None})
            else:
                changes += diff_states(before[key], after[key], sub)
        return changes
    if isinstance(before, list) and isinstance(after, list):
        changes = []
        for i in range(max(len(before), len(after))):
            sub = f"{path}/{i}"
            if i >= len(before):
                changes.append({"path": sub, "op": "added", "before": None, "after": after[i]})
            elif i >= len(after):
                changes.append({"path": sub, "op": "removed", "before": before[i], "after": None})
            else:
                changes += diff_states(before[i], after[i], sub)
        return changes
    if before != after or type(before) is not type(after):
        return [{"path": path or "/", "op": "changed", "before": before, "after": after}]
    return []


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


async def state_as_of(store: EventStore, job_id: str, at: datetime) -> tuple[int, JobState, str | None]:
    """(version, state, recorded_at of that version) of the job as of a moment."""
    events = await store.read_stream(stream_id(job_id))
    version = version_at(events, at)
    chosen = events[:version]
    return version, job_state(chosen), chosen[-1].recorded_at if chosen else None


async def diff_versions(store: EventStore, job_id: str, from_version: int, to_version: int | None) -> dict[str, Any]:
    """What changed in the job's state between two versions, and the events that changed it."""
    events = await store.read_stream(stream_id(job_id))
    head = events[-1].version if events else 0
    frm = min(from_version, head)
    to = head if to_version is None else min(to_version, head)
    lo, hi = sorted((frm, to))
    before = job_state(events[:frm]).to_dict(frm)
    after = job_state(events[:to]).to_dict(to)
    return {
        "stream_id": stream_id(job_id),
        "from_version": frm,
        "to_version": to,
        "changes": diff_states(before, after),
        "events": [
            {
                "version": e.version,
                "position": e.position,
                "type": e.type,
                "actor": e.metadata.get("actor"),
                "recorded_at": e.recorded_at,
            }
            for e in events[lo:hi]
        ],
    }
