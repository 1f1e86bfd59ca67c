"""Job commands and queries: /jobs..."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api import query_model
from api.deps import Call, CallDep, CallIfMatchDep, JobsDep, ReadModelsDep, StoreDep
from api.errors import NotFound
from api.responses import EncodedJson, Json, json_object
from api.schemas import (
    CommandAccepted,
    EventOut,
    EventPage,
    JobDetail,
    JobPage,
    JoinRequest,
    ReasonRequest,
    StartJobRequest,
    StateAt,
)
from commands.handlers import CommandHandler, CommandResult, new_id
from domain import commands as c
from domain.events import JobConfig, JobStatus
from domain.training_job import JobState, stream_id
from domain.values import ID_PATTERN
from projections.runner import ProjectionRunner

router = APIRouter(prefix="/jobs", tags=["jobs"])


class BoardQuery(BaseModel):
    """The job board's query parameters, validated as one model (api/query_model.py)."""

    model_config = ConfigDict(extra="ignore")

    status: JobStatus | None = None
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)


JobId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


async def accepted(projections: ProjectionRunner, result: CommandResult, status: int = 200) -> Json:
    """Answer (a CommandAccepted document) once the projections show the command's effect
    (read-your-writes for callers)."""
    position = result.events[-1].position if result.events else None
    if position is not None:
        with contextlib.suppress(TimeoutError):  # the events are stored; dashboards will catch up
            await projections.wait_for(position, timeout=5.0)
    body = {
        "stream_id": result.stream_id,
        "version": result.version,
        "position": position,
        "duplicate": result.duplicate,
        "events": [e.to_dict() for e in result.events],
    }
    return Json(body, status_code=status)


Jobs = CommandHandler[c.JobCommand, JobState]


async def execute(call: Call, job_id: str, command: c.JobCommand, status: int = 200) -> Json:
    jobs: Jobs = call.platform.jobs
    result = await jobs.execute(job_id, command, call.ctx, expected_version=call.if_match, idempotency_key=call.key)
    return await accepted(call.platform.projections, result, status)


@router.post("", status_code=201, response_model=CommandAccepted, summary="Start a training job")
async def start_job(body: StartJobRequest, call: CallDep) -> Json:
    job_id = body.job_id or new_id().replace("-", "")[:12]
    # Validated once, at the edge: StartJobRequest is a JobConfig with every one of its checks
    # (and stricter ones) plus the value-space walk StartJob would repeat, and job_id is an
    # EntityId (or a generated hex id). Building the config and the command again from those
    # values would only validate them a second and third time.
    config = JobConfig.model_construct(**{k: getattr(body, k) for k in JobConfig.model_fields})
    return await execute(call, job_id, c.StartJob.model_construct(job_id=job_id, config=config), 201)


@router.post("/{job_id}/cancel", response_model=CommandAccepted, summary="Cancel a job")
async def cancel_job(
    job_id: JobId,
    call: CallIfMatchDep,
    body: ReasonRequest | None = None,
) -> Json:
    reason = body.reason if body else "cancelled by request"
    return await execute(call, job_id, c.CancelJob(reason=reason))


@router.post("/{job_id}/clients", response_model=CommandAccepted, summary="A client joins the job")
async def join_job(
    job_id: JobId,
    body: JoinRequest,
    call: CallDep,
) -> Json:
    return await execute(call, job_id, c.JoinJob(client_id=body.client_id))


@router.post("/{job_id}/rounds/started", response_model=CommandAccepted, summary="A round began (sampled clients)")
async def start_round(
    job_id: JobId,
    body: c.StartRound,
    call: CallDep,
) -> Json:
    return await execute(call, job_id, body)


@router.post("/{job_id}/rounds", response_model=CommandAccepted, summary="Record a round's results")
async def record_round(
    job_id: JobId,
    body: c.RecordRoundResult,
    call: CallIfMatchDep,
) -> Json:
    return await execute(call, job_id, body)


@router.post("/{job_id}/start", response_model=CommandAccepted, summary="Mark the job's FL run as started")
async def mark_started(
    job_id: JobId,
    body: c.MarkJobStarted,
    call: CallDep,
) -> Json:
    return await execute(call, job_id, body)


@router.post("/{job_id}/complete", response_model=CommandAccepted, summary="Complete the job")
async def complete_job(
    job_id: JobId,
    body: c.CompleteJob,
    call: CallDep,
) -> Json:
    return await execute(call, job_id, body)


@router.post("/{job_id}/fail", response_model=CommandAccepted, summary="Fail the job")
async def fail_job(
    job_id: JobId,
    body: c.FailJob,
    call: CallDep,
) -> Json:
    return await execute(call, job_id, body)


@router.get(
    "",
    response_model=JobPage,
    response_model_exclude_unset=True,
    summary="The job board",
    **query_model.documented(BoardQuery),
)
async def list_jobs(rm: ReadModelsDep, request: Request) -> EncodedJson:
    page = query_model.parse(BoardQuery, request)  # not `Annotated[BoardQuery, Query()]`: see api/query_model.py
    where = {"status": page.status} if page.status is not None else None
    items = await rm.list_json("job_board", page.limit, page.offset, where)  # stored bytes, as in get_job
    total = await rm.count("job_board", where)
    return EncodedJson(json_object({"items": items}, {"total": total, "limit": page.limit, "offset": page.offset}))


@router.get("/{job_id}", response_model=JobDetail, response_model_exclude_unset=True, summary="One job in detail")
async def get_job(job_id: JobId, rm: ReadModelsDep) -> EncodedJson:
    doc = await rm.get_json("job_detail", job_id)  # the stored bytes: a long job's document is large
    if doc is None:
        raise NotFound(f"job {job_id} not found")
    return EncodedJson(doc)


@router.get("/{job_id}/events", response_model=EventPage, summary="The job's full history")
async def job_events(
    job_id: JobId,
    store: StoreDep,
    from_version: Annotated[int, Query(ge=1, le=2**53)] = 1,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventPage:
    events = await store.read_stream(stream_id(job_id), from_version, from_version + limit - 1)
    if not events and from_version == 1:
        raise NotFound(f"job {job_id} not found")
    more = len(events) == limit and await store.stream_version(stream_id(job_id)) > events[-1].version
    return EventPage(items=[EventOut.of(e) for e in events], next=events[-1].version + 1 if more else None)


@router.get("/{job_id}/state", response_model=StateAt, summary="The job's state as of a version")
async def job_state(
    job_id: JobId,
    jobs: JobsDep,
    response: Response,
    version: Annotated[int | None, Query(ge=1, le=2**53, description="default: current")] = None,
) -> StateAt:
    at, state = await jobs.state_at(job_id, version)
    if at == 0:
        raise NotFound(f"job {job_id} not found")
    response.headers["ETag"] = str(at)
    return StateAt(stream_id=stream_id(job_id), version=at, state=state.to_dict(at))
