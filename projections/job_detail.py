"""job_detail: everything about one job: config, per-round metrics series, clients, timeline."""

from __future__ import annotations

from typing import Any

from domain import events as e
from persistence.records import RecordedEvent
from projections.contributions import contribution_fields
from projections.ports import Doc

TIMELINE = 100  # newest events kept in the document; the whole history is GET /jobs/{id}/events


def _round(doc: Doc, number: int) -> dict[str, Any]:
    rounds = doc["rounds"]
    for entry in reversed(rounds):  # from the last: the round being reported is nearly always it
        if entry["round"] == number:
            return entry  # type: ignore[no-any-return]
    entry = {"round": number, "completed": False, "client_updates": [], "failures": []}
    doc["rounds"].append(entry)
    return entry


class JobDetail:
    name = "job_detail"
    fresh_on: tuple[type[e.Event], ...] = (e.JobCreated,)

    def keys(self, event: e.Event) -> list[str]:
        job_id = getattr(event, "job_id", None)
        return [job_id] if isinstance(job_id, str) else []

    def apply(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc | None:
        if isinstance(event, e.JobCreated):
            doc = {
                "job_id": event.job_id,
                "config": event.config.model_dump(mode="json"),
                "status": "pending",
                "run_id": None,
                "clients": [],
                "rounds": [],
                "final_metrics": {},
                "model_sha256": None,
                "reason": None,
                "timeline": [],
            }
        if doc is None:
            return None
        match event:  # the most frequent events first
            case e.ClientUpdateReceived():
                entry = _round(doc, event.round)
                entry["client_updates"].append(
                    {"client_id": event.client_id, "num_examples": event.num_examples, "metrics": event.metrics}
                    | contribution_fields(event)
                )
            case e.ClientFailed():
                entry = _round(doc, event.round)
                entry["failures"].append({"client_id": event.client_id, "code": event.code, "reason": event.reason})
            case e.RoundStarted():
                _round(doc, event.round).update(sampled_clients=event.sampled, started_at=recorded.recorded_at)
            case e.RoundCompleted():
                _round(doc, event.round).update(
                    completed=True,
                    sampled=event.sampled,
                    replied=event.replied,
                    failed=event.failed,
                    train_metrics=event.train_metrics,
                    evaluate_metrics=event.evaluate_metrics,
                    central_metrics=event.central_metrics,
                    duration_s=event.duration_s,
                    model_sha256=event.model_sha256,
                    completed_at=recorded.recorded_at,
                )
                doc["model_sha256"] = event.model_sha256
            case e.JobStarted(run_id=run_id):
                doc.update(status="running", run_id=run_id)
            case e.ClientJoined(client_id=client_id):
                doc["clients"].append(client_id)
            case e.JobCompleted(final_metrics=final, model_sha256=sha):
                doc.update(status="completed", final_metrics=final, model_sha256=sha or doc["model_sha256"])
            case e.JobFailed(reason=reason):
                doc.update(status="failed", reason=reason)
            case e.JobCancelled(reason=reason):
                doc.update(status="cancelled", reason=reason)
        timeline = doc["timeline"]
        timeline.append(
            {
                "version": recorded.version,
                "position": recorded.position,
                "type": recorded.type,
                "at": recorded.recorded_at,
                "actor": recorded.metadata.get("actor"),
            }
        )
        if len(timeline) > TIMELINE:
            del timeline[: len(timeline) - TIMELINE]
        doc.update(version=recorded.version, position=recorded.position, updated_at=recorded.recorded_at)
        return doc
