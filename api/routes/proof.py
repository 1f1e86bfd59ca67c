"""Prove a model: re-execute a job's aggregation from its history (`GET /jobs/{id}/replay`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import ArtifactsDep, AuditDep, ReadModelsDep, StoreDep
from api.errors import NotFound
from api.routes.jobs import JobId
from audit.lineage import job_lineage, to_prov
from audit.replay import replay_job
from audit.signing import key_id, public_key_pem

router = APIRouter(tags=["audit"])


class RoundReplayOut(BaseModel):
    round: int
    status: str = Field(description="match | diverged | not_re_executable")
    recorded_sha256: str | None
    replayed_sha256: str | None
    max_abs_diff: float | None = Field(description="max |replayed - recorded| over all weights, when both exist")
    reason: str
    updates: int


class ReplayOut(BaseModel):
    job_id: str
    ok: bool = Field(description="true only if every recorded round re-executed to its recorded model")
    re_executable: bool
    strategy: str | None
    versions: dict[str, str] = Field(description="flwr, torch, numpy, python as recorded in JobStarted")
    rounds: list[RoundReplayOut]
    first_diverging_round: int | None
    reason: str


@router.get(
    "/jobs/{job_id}/replay",
    response_model=ReplayOut,
    summary="Re-aggregate every round from the recorded updates and compare each model's sha256",
)
async def replay(job_id: JobId, store: StoreDep, artifacts: ArtifactsDep) -> ReplayOut:
    report = await replay_job(store, artifacts, job_id)
    if report is None:
        raise NotFound(f"job {job_id} not found")
    return ReplayOut.model_validate(report.to_dict())


class LedgerUpdate(BaseModel):
    client_id: str
    num_examples: int
    update_sha256: str | None
    weight: float | None = Field(description="the aggregation weight the strategy gave the update")
    update_norm: float | None = Field(description="L2 norm of (client model - the round's starting model)")
    cosine_to_aggregate: float | None = Field(description="cosine to (new global model - starting model)")


class LedgerFailure(BaseModel):
    client_id: str
    code: str
    reason: str


class LedgerRound(BaseModel):
    round: int
    completed: bool
    updates: list[LedgerUpdate]
    failures: list[LedgerFailure]
    weight_sum: float
    model_sha256: str | None = None


class LedgerClient(BaseModel):
    rounds: int
    weight_total: float
    failures: int


class LedgerOut(BaseModel):
    job_id: str
    strategy: str
    rounds: list[LedgerRound]
    clients: dict[str, LedgerClient]
    version: int
    position: int


@router.get("/jobs/{job_id}/contributions", response_model=LedgerOut, summary="The job's contribution ledger")
async def contributions(job_id: JobId, rm: ReadModelsDep) -> dict[str, Any]:
    doc = await rm.get("contributions", job_id)
    if doc is None:
        raise NotFound(f"job {job_id} not found")
    return doc


class PublicKeyOut(BaseModel):
    alg: str = "ed25519"
    key_id: str = Field(description="first 16 hex characters of sha256(raw public key)")
    public_key: str = Field(description="the raw 32-byte public key, hex")
    pem: str = Field(description="the same key as SubjectPublicKeyInfo PEM")


@router.get(
    "/audit/public-key",
    response_model=PublicKeyOut,
    summary="The Ed25519 key audit bundles are signed with (verify offline with flp audit verify-bundle)",
)
async def public_key(trail: AuditDep) -> PublicKeyOut:
    public = trail.public_key()
    if public is None:
        raise NotFound("bundle signing is off")
    return PublicKeyOut(key_id=key_id(public), public_key=public.hex(), pem=public_key_pem(public))


@router.get(
    "/jobs/{job_id}/lineage",
    summary="The job's lineage graph (final model -> rounds -> updates -> clients -> app code -> config)",
    description="Every node names the stored artifact (sha256) and/or event (stream, version, position) it "
    "stands for. `format=prov` answers a W3C PROV-JSON document instead.",
)
async def lineage(
    job_id: JobId,
    store: StoreDep,
    format: Annotated[Literal["graph", "prov"], Query(description="graph (default) or prov (PROV-JSON)")] = "graph",
) -> dict[str, Any]:
    graph = await job_lineage(store, job_id)
    if graph is None:
        raise NotFound(f"job {job_id} not found")
    return to_prov(graph) if format == "prov" else graph
