"""Request and response bodies of the HTTP API (what /docs shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from domain.events import JobConfig
from domain.values import EntityId, Key, Scalar, Text, Valued
from persistence.records import RecordedEvent


class StartJobRequest(JobConfig, Valued):
    model_config = ConfigDict(allow_inf_nan=False)

    job_id: EntityId | None = Field(default=None, description="generated when omitted")
    hyperparameters: dict[Key, Scalar] = Field(default_factory=dict, max_length=1_000)


class ReasonRequest(Valued):
    reason: Text = Field(default="cancelled by request", min_length=1, max_length=2000)


class JoinRequest(BaseModel):
    client_id: EntityId


class EventOut(BaseModel):
    event_id: str
    stream_id: str
    version: int
    position: int
    type: str
    schema_version: int
    data: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str
    seal: str | None = Field(default=None, description="HMAC seal written with the event (audit)")

    @classmethod
    def of(cls, e: RecordedEvent) -> EventOut:
        return cls.model_construct(**e.to_dict())


class CommandAccepted(BaseModel):
    stream_id: str
    version: int = Field(description="the stream's version after the command")
    position: int | None = Field(description="global position of the last appended event")
    duplicate: bool = Field(description="true when an Idempotency-Key matched an earlier request")
    events: list[EventOut]


class Page(BaseModel):
    total: int
    limit: int
    offset: int


# --- read models (what the projections keep; documented so clients can rely on the shape) ------


class JobRow(BaseModel):
    """A row of the job board (read model `job_board`)."""

    job_id: str
    name: str
    model: str
    strategy: str
    runtime: str
    rounds: int
    min_clients: int
    status: str
    round: int = Field(description="the last completed round")
    clients: list[str]
    latest_metrics: dict[str, float]
    run_id: str | None
    model_sha256: str | None
    reason: str | None
    created_at: str
    created_by: str | None
    updated_at: str
    version: int
    position: int


class JobPage(Page):
    items: list[JobRow]


class ClientUpdate(BaseModel):
    client_id: str
    num_examples: int
    metrics: dict[str, float]
    # the contribution ledger's figures (None for updates recorded before they were)
    update_sha256: str | None = None
    weight: float | None = None
    update_norm: float | None = None
    cosine_to_aggregate: float | None = None


class ClientFailureOut(BaseModel):
    client_id: str
    code: str
    reason: str


class RoundOut(BaseModel):
    round: int
    completed: bool
    client_updates: list[ClientUpdate]
    failures: list[ClientFailureOut]
    sampled: int | None = None
    replied: int | None = None
    failed: int | None = None
    train_metrics: dict[str, float] | None = None
    evaluate_metrics: dict[str, float] | None = None
    central_metrics: dict[str, float] | None = None
    duration_s: float | None = None
    model_sha256: str | None = None
    completed_at: str | None = None


class TimelineEntry(BaseModel):
    version: int
    position: int
    type: str
    at: str
    actor: str | None


class JobDetail(BaseModel):
    """One job in detail (read model `job_detail`). `timeline` holds the newest events only; the
    whole history is `GET /jobs/{id}/events`."""

    job_id: str
    config: JobConfig
    status: str
    run_id: str | None
    clients: list[str]
    rounds: list[RoundOut]
    final_metrics: dict[str, float]
    model_sha256: str | None
    reason: str | None
    timeline: list[TimelineEntry]
    version: int
    position: int
    updated_at: str


class ClientFailureSeen(BaseModel):
    job_id: str
    round: int
    code: str
    reason: str


class ClientOut(BaseModel):
    """A client device (read model `client_fleet`)."""

    client_id: str
    name: str | None
    properties: dict[str, str]
    status: str
    jobs: list[str]
    updates: int
    failures: int
    examples: int
    last_failure: ClientFailureSeen | None
    registered_at: str | None = None
    left_reason: str | None = None
    last_seen_at: str
    position: int


class ClientPage(Page):
    items: list[ClientOut]


class EventPage(BaseModel):
    items: list[EventOut]
    next: int | None = Field(description="pass as `after`/`from_version` for the next page; null at the end")


class StateAt(BaseModel):
    stream_id: str
    version: int
    state: dict[str, Any]


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when a stream is faulted or the projections are stalled")
    head_position: int
    projections: dict[str, dict[str, int]]
    stalled: str | None = Field(default=None, description="why the projections stopped, while they are retried")
    faulted_streams: list[dict[str, Any]] = Field(
        default_factory=list, description="streams with an event that does not decode (frozen on the read side)"
    )
    services: dict[str, dict[str, Any]] = Field(
        description="background services; those run by one replica at a time say `owner` (and `here`)"
    )
    replica: str = Field(description="the replica that answered (its name in the service leases)")
