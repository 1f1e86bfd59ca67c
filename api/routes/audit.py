"""Audit: a job's verifiable bundle, chain verification, time travel by timestamp, diffs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import AuditDep, StoreDep
from api.errors import NotFound
from api.routes.jobs import JobId
from domain.training_job import stream_id
from persistence.ports import EventStore

router = APIRouter(tags=["audit"])
NDJSON = "application/x-ndjson"


class BreakOut(BaseModel):
    stream_id: str
    version: int
    position: int
    reason: str
    code: str = Field(
        description="gap | order | version | link | content | undecodable | unsealed | seal | moved | missing"
    )


class VerifyOut(BaseModel):
    ok: bool
    events_checked: int
    streams: int
    head_position: int
    sealed_checked: bool = Field(description="true when every event's keyed seal was checked too")
    first_break: BreakOut | None


class StateAsOf(BaseModel):
    stream_id: str
    version: int
    recorded_at: str | None
    state: dict[str, Any]


class Change(BaseModel):
    path: str
    op: str
    before: Any = None
    after: Any = None


class DiffEvent(BaseModel):
    version: int
    position: int
    type: str
    actor: str | None
    recorded_at: str


class DiffOut(BaseModel):
    stream_id: str
    from_version: int
    to_version: int
    changes: list[Change]
    events: list[DiffEvent]


async def _require_job(store: EventStore, job_id: str) -> None:
    if await store.stream_version(stream_id(job_id)) == 0:
        raise NotFound(f"job {job_id} not found")


@router.get(
    "/jobs/{job_id}/audit",
    response_class=Response,
    summary="The job's self-contained audit bundle (NDJSON)",
    responses={200: {"content": {NDJSON: {"schema": {"type": "string"}}}, "description": "the bundle"}},
)
async def job_bundle(job_id: JobId, trail: AuditDep, request: Request) -> Response:
    actor = getattr(getattr(request.state, "principal", None), "subject", "anonymous")
    lines = await trail.bundle(job_id, actor)
    if lines is None:
        raise NotFound(f"job {job_id} not found")
    return Response(
        "\n".join(lines) + "\n",
        media_type=NDJSON,
        headers={"Content-Disposition": f'attachment; filename="flp-audit-{job_id}.ndjson"'},
    )


@router.get("/jobs/{job_id}/audit/verify", response_model=VerifyOut, summary="Verify the job's hash chain and seals")
async def verify_job(job_id: JobId, trail: AuditDep, store: StoreDep) -> VerifyOut:
    await _require_job(store, job_id)
    report = await trail.verify(job_id)
    return VerifyOut.model_validate(report.to_dict())


@router.get("/audit/verify", response_model=VerifyOut, summary="Verify every stream's chain, the feed and the seals")
async def verify_all(trail: AuditDep) -> VerifyOut:
    report = await trail.verify()
    return VerifyOut.model_validate(report.to_dict())


@router.get("/jobs/{job_id}/as-of", response_model=StateAsOf, summary="The job's state as of a moment (time travel)")
async def job_as_of(
    job_id: JobId,
    trail: AuditDep,
    store: StoreDep,
    timestamp: Annotated[datetime, Query(description="ISO 8601; without a zone it is UTC")],
) -> StateAsOf:
    at = timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)
    await _require_job(store, job_id)
    version, state, recorded_at = await trail.state_as_of(job_id, at)
    if version == 0:
        raise NotFound(f"job {job_id} did not exist yet at {at.isoformat()}")
    return StateAsOf(
        stream_id=stream_id(job_id), version=version, recorded_at=recorded_at, state=state.to_dict(version)
    )


@router.get("/jobs/{job_id}/diff", response_model=DiffOut, summary="What changed between two versions of the job")
async def job_diff(
    job_id: JobId,
    trail: AuditDep,
    store: StoreDep,
    from_version: Annotated[int, Query(ge=0, le=2**53, description="0 = before the job existed")] = 0,
    to_version: Annotated[int | None, Query(ge=0, le=2**53, description="default: current")] = None,
) -> DiffOut:
    await _require_job(store, job_id)
    return DiffOut.model_validate(await trail.diff(job_id, from_version, to_version))
