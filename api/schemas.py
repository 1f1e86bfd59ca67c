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
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


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
    services: dict[str, dict[str, Any]]
