"""Commands: what a caller asks an aggregate to do. Validated on construction, inside the
event value space (domain.values), so every event decided from them can be stored and read back."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from domain.events import JobConfig
from domain.provenance import JobProvenance
from domain.values import Count, EntityId, FiniteFloat, Metrics, PositiveInt, Sha256Hex, Text, Valued

MAX_CLIENTS_PER_ROUND = 10_000


class Command(Valued):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class StartJob(Command):
    job_id: EntityId
    config: JobConfig


class MarkJobStarted(Command):
    """The runtime submitted the job's Flower run."""

    run_id: Text = Field(min_length=1, max_length=200)
    provenance: JobProvenance | None = None


class JoinJob(Command):
    client_id: EntityId


class ClientResult(Valued):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    client_id: EntityId
    num_examples: Count
    metrics: Metrics = Field(default_factory=dict)
    update_sha256: Sha256Hex | None = None
    weight: FiniteFloat | None = Field(default=None, ge=0, le=1, description="aggregation weight the strategy used")
    update_norm: FiniteFloat | None = Field(default=None, ge=0, description="L2 norm of update - round start")
    cosine_to_aggregate: FiniteFloat | None = Field(default=None, ge=-1.0000001, le=1.0000001)


class ClientFailure(Valued):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    client_id: EntityId
    code: Text = Field(min_length=1, max_length=100)
    reason: Text = Field(max_length=2000)


class StartRound(Command):
    """The runtime began a round and sampled these clients (node ids as client ids)."""

    round: PositiveInt
    client_ids: list[EntityId] = Field(default_factory=list, max_length=MAX_CLIENTS_PER_ROUND)


class RecordRoundResult(Command):
    round: PositiveInt
    sampled: Count | None = None
    results: list[ClientResult] = Field(default_factory=list, max_length=MAX_CLIENTS_PER_ROUND)
    failures: list[ClientFailure] = Field(default_factory=list, max_length=MAX_CLIENTS_PER_ROUND)
    train_metrics: Metrics = Field(default_factory=dict)
    evaluate_metrics: Metrics = Field(default_factory=dict)
    central_metrics: Metrics = Field(default_factory=dict)
    duration_s: FiniteFloat = Field(default=0.0, ge=0)
    model_sha256: Sha256Hex | None = None
    strategy_state_sha256: Sha256Hex | None = None


class CompleteJob(Command):
    final_metrics: Metrics = Field(default_factory=dict)
    model_sha256: Sha256Hex | None = None


class FailJob(Command):
    """The job cannot go on. A runtime whose round failed (fewer than min_clients replied) names
    the round and its failed clients, which are recorded as ClientFailed before JobFailed."""

    reason: Text = Field(min_length=1, max_length=2000)
    round: PositiveInt | None = None
    failures: list[ClientFailure] = Field(default_factory=list, max_length=MAX_CLIENTS_PER_ROUND)


class CancelJob(Command):
    reason: Text = Field(default="cancelled by request", max_length=2000)


class RegisterClient(Command):
    client_id: EntityId
    name: Text = Field(min_length=1, max_length=200)
    properties: dict[str, str] = Field(default_factory=dict, max_length=1_000)


class LeaveFleet(Command):
    """A client leaves the fleet (recorded as ClientLeft)."""

    reason: Text = Field(default="", max_length=2000)


JobCommand = StartJob | MarkJobStarted | JoinJob | StartRound | RecordRoundResult | CompleteJob | FailJob | CancelJob
ClientCommand = RegisterClient | LeaveFleet
