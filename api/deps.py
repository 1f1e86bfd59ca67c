"""FastAPI dependencies: each part of the platform a route uses, and the caller's command context.
Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
thread hop per request for what is an attribute lookup."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request

from api.auth.service import AuthService
from api.ports import LiveFeed, Platform
from audit.trail import AuditTrail
from commands.handlers import CommandContext, CommandHandler
from domain.client import ClientState
from domain.commands import ClientCommand, JobCommand
from domain.fleet import FleetCommand, FleetState
from domain.training_job import JobState
from persistence.ports import ArtifactStore, EventStore
from projections.ports import ReadModelStore
from projections.runner import ProjectionRunner

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


async def platform_dep(request: Request) -> Platform:
    return get_platform(request)


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


async def command_context(
    request: Request,
    x_correlation_id: Annotated[str | None, Header(max_length=200)] = None,
    x_causation_id: Annotated[str | None, Header(max_length=200)] = None,
    traceparent: Annotated[str | None, Header(max_length=55)] = None,
) -> CommandContext:
    actor = getattr(request.state, "principal", None)
    return CommandContext(
        actor=getattr(actor, "subject", None) or "anonymous",
        correlation_id=x_correlation_id,
        causation_id=x_causation_id,
        traceparent=traceparent if traceparent and _TRACEPARENT.match(traceparent) else None,
    )


PlatformDep = Annotated[Platform, Depends(platform_dep)]


async def _store(p: PlatformDep) -> EventStore:
    return p.store


async def _read_models(p: PlatformDep) -> ReadModelStore:
    return p.read_models


async def _jobs(p: PlatformDep) -> CommandHandler[JobCommand, JobState]:
    return p.jobs


async def _clients(p: PlatformDep) -> CommandHandler[ClientCommand, ClientState]:
    return p.clients


async def _fleet(p: PlatformDep) -> CommandHandler[FleetCommand, FleetState]:
    return p.fleet


async def _projections(p: PlatformDep) -> ProjectionRunner:
    return p.projections


async def _live(p: PlatformDep) -> LiveFeed:
    return p.live


async def _audit(p: PlatformDep) -> AuditTrail:
    return p.audit


async def _artifacts(p: PlatformDep) -> ArtifactStore:
    return p.artifacts


def get_auth(request: Request) -> AuthService:
    return get_platform(request).auth


async def auth_dep(request: Request) -> AuthService:
    return get_auth(request)


StoreDep = Annotated[EventStore, Depends(_store)]
ReadModelsDep = Annotated[ReadModelStore, Depends(_read_models)]
JobsDep = Annotated[CommandHandler[JobCommand, JobState], Depends(_jobs)]
ClientsDep = Annotated[CommandHandler[ClientCommand, ClientState], Depends(_clients)]
FleetDep = Annotated[CommandHandler[FleetCommand, FleetState], Depends(_fleet)]
ProjectionsDep = Annotated[ProjectionRunner, Depends(_projections)]
LiveDep = Annotated[LiveFeed, Depends(_live)]
AuditDep = Annotated[AuditTrail, Depends(_audit)]
ArtifactsDep = Annotated[ArtifactStore, Depends(_artifacts)]
ContextDep = Annotated[CommandContext, Depends(command_context)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
IfMatch = Annotated[int | None, Header(alias="If-Match", ge=0, description="expected stream version")]
