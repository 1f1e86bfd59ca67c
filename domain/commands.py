"""Commands: what a caller asks an aggregate to do. Validated on construction."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from domain.events import JobConfig, Metrics

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StartJob(Command):
    job_id: str = Field(pattern=_ID)
    config: JobConfig


class MarkJobStarted(Command):
    """The runtime submitted the job's Flower run."""

    run_id: str = Field(min_length=1, max_length=200)


class JoinJob(Command):
    client_id: str = Field(pattern=_ID)


class ClientResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(pattern=_ID)
    num_examples: int = Field(ge=0)
    metrics: Metrics = Field(default_factory=dict)


class ClientFailure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    client_id: str = Field(pattern=_ID)
    code: str = Field(min_length=1, max_length=100)
    reason: str = Field(max_length=2000)


class RecordRoundResult(Command):
    round: int = Field(ge=1)
    sampled: int | None = Field(default=None, ge=0)
    results: list[ClientResult] = Field(default_factory=list)
    failures: list[ClientFailure] = Field(default_factory=list)
    train_metrics: Metrics = Field(default_factory=dict)
    evaluate_metrics: Metrics = Field(default_factory=dict)
    central_metrics: Metrics = Field(default_factory=dict)
    duration_s: float = Field(default=0.0, ge=0)
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class CompleteJob(Command):
    final_metrics: Metrics = Field(default_factory=dict)
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class FailJob(Command):
    """The job cannot go on. A runtime whose round failed (fewer than min_clients replied) names
    the round and its failed clients, which are recorded as ClientFailed before JobFailed."""

    reason: str = Field(min_length=1, max_length=2000)
    round: int | None = Field(default=None, ge=1)
    failures: list[ClientFailure] = Field(default_factory=list, max_length=100_000)


class CancelJob(Command):
    reason: str = Field(default="cancelled by request", max_length=2000)


class RegisterClient(Command):
    client_id: str = Field(pattern=_ID)
    name: str = Field(min_length=1, max_length=200)
    properties: dict[str, str] = Field(default_factory=dict)


class LeaveFleet(Command):
    """A client leaves the fleet (recorded as ClientLeft)."""

    reason: str = Field(default="", max_length=2000)


JobCommand = StartJob | MarkJobStarted | JoinJob | RecordRoundResult | CompleteJob | FailJob | CancelJob
ClientCommand = RegisterClient | LeaveFleet
