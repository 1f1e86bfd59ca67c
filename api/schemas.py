"""Request and response bodies of the HTTP API (what /docs shows)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from domain.envelope import RecordedEvent
from domain.events import JobConfig


class StartJobRequest(JobConfig):
    job_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$", description="generated when omitted"
    )


class ReasonRequest(BaseModel):
    reason: str = Field(default="cancelled by request", min_length=1, max_length=2000)


class JoinRequest(BaseModel):
    client_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


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
    status: str
    head_position: int
    projections: dict[str, dict[str, int]]
    services: dict[str, dict[str, Any]]
