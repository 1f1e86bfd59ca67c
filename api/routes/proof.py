"""Prove a model: re-execute a job's aggregation from its history (`GET /jobs/{id}/replay`)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import ArtifactsDep, StoreDep
from api.errors import NotFound
from api.routes.jobs import JobId
from audit.replay import replay_job

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
