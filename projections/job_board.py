"""job_board: one row per job for dashboards (status, round, latest metrics, clients)."""

from __future__ import annotations

from domain import events as e
from persistence.records import RecordedEvent
from projections.ports import Doc


class JobBoard:
    name = "job_board"
    fresh_on: tuple[type[e.Event], ...] = (e.JobCreated,)

    def keys(self, event: e.Event) -> list[str]:
        job_id = getattr(event, "job_id", None)
        return [job_id] if isinstance(job_id, str) else []

    def apply(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc | None:
        if isinstance(event, e.JobCreated):
            cfg = event.config
            doc = {
                "job_id": event.job_id,
                "name": cfg.name,
                "model": cfg.model,
                "strategy": cfg.strategy,
                "runtime": cfg.runtime,
                "rounds": cfg.rounds,
                "min_clients": cfg.min_clients,
                "status": "pending",
                "round": 0,
                "clients": [],
                "latest_metrics": {},
                "run_id": None,
                "model_sha256": None,
                "reason": None,
                "created_at": recorded.recorded_at,
                "created_by": recorded.metadata.get("actor"),
                "started_at": None,
                "ended_at": None,
                "running_round": None,
            }
        if doc is None:
            return None
        match event:
            case e.JobStarted(run_id=run_id):
                doc.update(status="running", run_id=run_id, started_at=recorded.recorded_at)
            case e.ClientJoined(client_id=client_id):
                doc["clients"].append(client_id)
            case e.RoundStarted():
                doc["running_round"] = event.round
            case e.RoundCompleted():
                doc.update(
                    running_round=None,
                    round=event.round,
                    latest_metrics={**event.train_metrics, **event.evaluate_metrics, **event.central_metrics},
                    model_sha256=event.model_sha256,
                )
            case e.JobCompleted(final_metrics=final, model_sha256=sha):
                doc.update(status="completed", model_sha256=sha or doc["model_sha256"])
                if final:
                    doc["latest_metrics"] = {**doc["latest_metrics"], **final}
            case e.JobFailed(reason=reason):
                doc.update(status="failed", reason=reason)
            case e.JobCancelled(reason=reason):
                doc.update(status="cancelled", reason=reason)
        if isinstance(event, e.JobCompleted | e.JobFailed | e.JobCancelled):
            doc.update(ended_at=recorded.recorded_at, running_round=None)
        doc.update(updated_at=recorded.recorded_at, version=recorded.version, position=recorded.position)
        return doc
