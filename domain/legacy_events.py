"""Old schema versions of events, kept so that their published schemas stay exported and stored
events of those versions stay readable (upcast on read by `domain.upcasting`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from domain.events import Event, Metrics


class JobStartedV1(Event):
    model_config = ConfigDict(frozen=True, extra="forbid", title="JobStarted")
    type: ClassVar[str] = "JobStarted"
    schema_version: ClassVar[int] = 1

    job_id: str
    run_id: str


class ClientUpdateReceivedV1(Event):
    model_config = ConfigDict(frozen=True, extra="forbid", title="ClientUpdateReceived")
    type: ClassVar[str] = "ClientUpdateReceived"
    schema_version: ClassVar[int] = 1

    job_id: str
    round: int
    client_id: str
    num_examples: int
    metrics: Metrics = Field(default_factory=dict)


class RoundCompletedV1(Event):
    model_config = ConfigDict(frozen=True, extra="forbid", title="RoundCompleted")
    type: ClassVar[str] = "RoundCompleted"
    schema_version: ClassVar[int] = 1

    job_id: str
    round: int
    sampled: int
    replied: int
    failed: int
    train_metrics: Metrics = Field(default_factory=dict)
    evaluate_metrics: Metrics = Field(default_factory=dict)
    central_metrics: Metrics = Field(default_factory=dict)
    duration_s: float = 0.0
    model_sha256: str | None = None
