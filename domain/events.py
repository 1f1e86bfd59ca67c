"""Every event flp records. One class per event type; the registry maps type names to classes.

Events are frozen pydantic models. `type` and `schema_version` are class-level: a schema change is
a new class with a higher `schema_version` plus an upcaster in `domain.upcasting`, never an
in-place edit of a class already used to write events.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, model_validator

from domain.provenance import JobProvenance

Metrics = dict[str, FiniteFloat]
JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
Strategy = Literal["fedavg", "fedprox", "fedadam"]
Partitioning = Literal["iid", "dirichlet"]
Runtime = Literal["flower", "external"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class Event(BaseModel):
    """Base of all events. Subclasses set `type` (defaults to the class name) and version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type" not in cls.__dict__:
            cls.type = cls.__name__


class JobConfig(BaseModel):
    """What a job trains and how; fixed when the job is created."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(default="mlp", min_length=1, max_length=100)
    strategy: Strategy = "fedavg"
    rounds: int = Field(ge=1, le=10_000)
    min_clients: int = Field(ge=1, le=100_000)
    num_clients: int = Field(default=3, ge=1, le=100_000)
    partitioning: Partitioning = "iid"
    dirichlet_alpha: float = Field(default=0.5, gt=0, le=1_000)
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    runtime: Runtime = "flower"
    hyperparameters: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _enough_clients(self) -> JobConfig:
        if self.min_clients > self.num_clients:
            raise ValueError(f"min_clients={self.min_clients} exceeds num_clients={self.num_clients}")
        return self


# --- job stream: job-<id> -------------------------------------------------------------------


class JobCreated(Event):
    job_id: str
    config: JobConfig


class JobStarted(Event):
    """v2: what replay needs (initial model, strategy and its parameters, versions); None for
    runtimes that record none (external jobs) and for v1 events."""

    schema_version: ClassVar[int] = 2

    job_id: str
    run_id: str
    provenance: JobProvenance | None = None


class ClientJoined(Event):
    job_id: str
    client_id: str


class RoundStarted(Event):
    """A round began: the clients the strategy sampled for it (they join the job first)."""

    job_id: str
    round: int
    sampled: list[str] = Field(default_factory=list)


class ClientUpdateReceived(Event):
    """v2: the update's artifact (`update_sha256`), the aggregation weight the strategy gave it,
    its L2 norm (update minus the round's starting model) and its cosine similarity to the
    aggregate update. Events of a round are in the strategy's aggregation order."""

    schema_version: ClassVar[int] = 2

    job_id: str
    round: int
    client_id: str
    num_examples: int
    metrics: Metrics = Field(default_factory=dict)
    update_sha256: str | None = None
    weight: float | None = None
    update_norm: float | None = None
    cosine_to_aggregate: float | None = None


class ClientFailed(Event):
    job_id: str
    round: int
    client_id: str
    code: str
    reason: str


class RoundCompleted(Event):
    """v2: `strategy_state_sha256`, the artifact of the strategy's state after the round (FedAdam's
    moments), for strategies that keep one."""

    schema_version: ClassVar[int] = 2

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
    strategy_state_sha256: str | None = None


class JobCompleted(Event):
    job_id: str
    final_metrics: Metrics = Field(default_factory=dict)
    model_sha256: str | None = None


class JobFailed(Event):
    job_id: str
    reason: str


class JobCancelled(Event):
    job_id: str
    reason: str


# --- client stream: client-<id> -------------------------------------------------------------


class ClientRegistered(Event):
    client_id: str
    name: str
    properties: dict[str, str] = Field(default_factory=dict)


class ClientLeft(Event):
    client_id: str
    reason: str = ""


# --- fleet stream: fleet (SuperNodes allowed to join the federation; fingerprints, never keys) ---


class NodeRegistered(Event):
    name: str
    fingerprint: str  # sha256 (hex) of the node's public key, DER SubjectPublicKeyInfo
    actor: str
    reason: str = ""


class NodeRevoked(Event):
    name: str
    fingerprint: str
    actor: str
    reason: str = ""


class NodeConnected(Event):
    """The SuperLink saw the registered node online under this Flower node id."""

    name: str
    fingerprint: str
    flower_node_id: str  # Flower's uint64 node id, as text (beyond the value space's exact integers)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        JobCreated,
        JobStarted,
        ClientJoined,
        RoundStarted,
        ClientUpdateReceived,
        ClientFailed,
        RoundCompleted,
        JobCompleted,
        JobFailed,
        JobCancelled,
        ClientRegistered,
        ClientLeft,
        NodeRegistered,
        NodeRevoked,
        NodeConnected,
    )
}


def event_class(type_name: str) -> type[Event]:
    """The class for a stored event type (after upcasting to the current schema version)."""
    try:
        return EVENT_TYPES[type_name]
    except KeyError:
        raise ValueError(f"unknown event type {type_name!r}") from None
