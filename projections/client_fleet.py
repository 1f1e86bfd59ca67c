"""client_fleet: every client (device) seen: registration, jobs joined, updates and failures."""

from __future__ import annotations

from domain import events as e
from persistence.records import RecordedEvent
from projections.ports import Doc

_INTERESTING = (e.ClientRegistered, e.ClientLeft, e.ClientJoined, e.ClientUpdateReceived, e.ClientFailed)


class ClientFleet:
    name = "client_fleet"

    def keys(self, event: e.Event) -> list[str]:
        return [event.client_id] if isinstance(event, _INTERESTING) else []

    def apply(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc | None:
        if not isinstance(event, _INTERESTING):
            return doc
        doc = doc or {
            "client_id": event.client_id,
            "name": None,
            "properties": {},
            "status": "unregistered",
            "jobs": [],
            "updates": 0,
            "failures": 0,
            "examples": 0,
            "last_failure": None,
        }
        match event:
            case e.ClientRegistered(name=name, properties=properties):
                doc.update(name=name, properties=properties, status="active", registered_at=recorded.recorded_at)
            case e.ClientLeft(reason=reason):
                doc.update(status="left", left_reason=reason)
            case e.ClientJoined(job_id=job_id):
                if job_id not in doc["jobs"]:
                    doc["jobs"].append(job_id)
            case e.ClientUpdateReceived(num_examples=n):
                doc.update(updates=doc["updates"] + 1, examples=doc["examples"] + n)
            case e.ClientFailed(job_id=job_id, round=rnd, code=code, reason=reason):
                doc.update(
                    failures=doc["failures"] + 1,
                    last_failure={"job_id": job_id, "round": rnd, "code": code, "reason": reason},
                )
        doc.update(last_seen_at=recorded.recorded_at, position=recorded.position)
        return doc
