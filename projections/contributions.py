"""contributions: the contribution ledger of each job, one document per job, rebuildable.

Per round: each client's aggregation weight (the strategy's n_i / sum n), its update's L2 norm
(client model minus the round's starting model), its cosine similarity to the aggregate update,
the update's artifact, and the round's failed clients; the weights of a completed round sum to 1.
Per client over the job: rounds contributed, the sum of its weights, failures.
The figures are what the ServerApp recorded in `ClientUpdateReceived` (v2); updates recorded
before that carry None.
"""

from __future__ import annotations

from typing import Any

from domain import events as e
from persistence.records import RecordedEvent
from projections.ports import Doc


def contribution_fields(event: e.ClientUpdateReceived) -> dict[str, Any]:
    """What an update says of its contribution (spelled out, not looked up by name: this runs
    twice for every update a replay applies)."""
    return {
        "update_sha256": event.update_sha256,
        "weight": event.weight,
        "update_norm": event.update_norm,
        "cosine_to_aggregate": event.cosine_to_aggregate,
    }


def _round(doc: Doc, number: int) -> dict[str, Any]:
    for existing in reversed(doc["rounds"]):
        if existing["round"] == number:
            return existing  # type: ignore[no-any-return]
    entry: dict[str, Any] = {"round": number, "completed": False, "updates": [], "failures": [], "weight_sum": 0.0}
    doc["rounds"].append(entry)
    return entry


def _client(doc: Doc, client_id: str) -> dict[str, Any]:
    clients: dict[str, dict[str, Any]] = doc["clients"]
    return clients.setdefault(client_id, {"rounds": 0, "weight_total": 0.0, "failures": 0})


class ContributionLedger:
    name = "contributions"
    fresh_on: tuple[type[e.Event], ...] = (e.JobCreated,)

    def keys(self, event: e.Event) -> list[str]:
        if isinstance(event, e.JobCreated | e.ClientUpdateReceived | e.ClientFailed | e.RoundCompleted):
            return [event.job_id]
        return []

    def apply(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc | None:
        if isinstance(event, e.JobCreated):
            doc = {"job_id": event.job_id, "strategy": event.config.strategy, "rounds": [], "clients": {}}
        if doc is None:
            return None
        match event:
            case e.ClientUpdateReceived():
                entry = _round(doc, event.round)
                entry["updates"].append(
                    {"client_id": event.client_id, "num_examples": event.num_examples} | contribution_fields(event)
                )
                client = _client(doc, event.client_id)
                client["rounds"] += 1
                if event.weight is not None:
                    entry["weight_sum"] += event.weight
                    client["weight_total"] += event.weight
            case e.ClientFailed():
                _round(doc, event.round)["failures"].append(
                    {"client_id": event.client_id, "code": event.code, "reason": event.reason}
                )
                _client(doc, event.client_id)["failures"] += 1
            case e.RoundCompleted():
                _round(doc, event.round).update(completed=True, model_sha256=event.model_sha256)
        doc.update(version=recorded.version, position=recorded.position)
        return doc
