"""FastAPI dependencies: each part of the platform a route uses, and the caller's command context.
Every dependency is `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
thread hop per request for what is an attribute lookup. Each part takes the platform from the
request itself rather than from `PlatformDep`: a dependency of a dependency is one more level
FastAPI solves (its path, query, header and cookie parameters) on every request."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import Field, TypeAdapter, ValidationError

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


def _text_header(request: Request, name: str, max_length: int, min_length: int = 0) -> str | None:
    value = request.headers.get(name)  # case-insensitive; `name` as the error names it
    if value is None:
        return None
    if len(value) > max_length:
        raise _invalid_header(name, f"String should have at most {max_length} characters", "string_too_long")
    if len(value) < min_length:
        raise _invalid_header(name, f"String should have at least {min_length} character", "string_too_short")
    return value


def _invalid_header(name: str, msg: str, kind: str) -> RequestValidationError:
    """A 422 problem (api/errors.py) naming the header, as FastAPI's own header validation gave."""
    return RequestValidationError([{"loc": ("header", name), "msg": msg, "type": kind}])


def _context(request: Request) -> CommandContext:
    actor = getattr(request.state, "principal", None)
    traceparent = _text_header(request, "traceparent", 55)
    return CommandContext(
        actor=getattr(actor, "subject", None) or "anonymous",
        correlation_id=_text_header(request, "x-correlation-id", 200),
        causation_id=_text_header(request, "x-causation-id", 200),
        traceparent=traceparent if traceparent and _TRACEPARENT.match(traceparent) else None,
    )


_VERSION = TypeAdapter(Annotated[int, Field(ge=0)])


def _if_match(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    try:
        return _VERSION.validate_python(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _invalid_header("If-Match", str(first["msg"]), str(first["type"])) from None


async def command_context(request: Request) -> CommandContext:
    """Who asks and why (X-Correlation-ID, X-Causation-ID, traceparent), read from the headers
    directly: as FastAPI `Header` parameters they cost a pydantic validation each per request.
    `document_headers` puts them in the OpenAPI schema."""
    return _context(request)


@dataclass(frozen=True, slots=True)
class Call:
    """A command request's parts: the platform, the command context and the headers that steer
    the command (Idempotency-Key; If-Match where the route takes one)."""

    platform: Platform
    ctx: CommandContext
    key: str | None
    if_match: int | None = None


async def command_call(request: Request) -> Call:
    """One dependency for a command route (a FastAPI dependency each for the platform part, the
    context and every header was a quarter of the request's time)."""
    key = _text_header(request, "Idempotency-Key", 200, min_length=1)
    return Call(get_platform(request), _context(request), key)


async def command_call_if_match(request: Request) -> Call:
    """`command_call`, with the If-Match header (the expected stream version)."""
    key = _text_header(request, "Idempotency-Key", 200, min_length=1)
    return Call(get_platform(request), _context(request), key, _if_match(request))


def _header(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "in": "header", "required": False, "schema": schema}
    if description:
        doc["description"] = description
    return doc


CONTEXT_HEADERS = [
    _header("x-correlation-id", {"type": "string", "maxLength": 200}, "stored as the events' correlation_id"),
    _header("x-causation-id", {"type": "string", "maxLength": 200}, "stored as the events' causation_id"),
    _header("traceparent", {"type": "string", "maxLength": 55}, "W3C trace context of the caller"),
]
IDEMPOTENCY_HEADER = _header(
    "Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": 200}, "the same key gets the first answer"
)
IF_MATCH_HEADER = _header("If-Match", {"type": "integer", "minimum": 0}, "expected stream version")
HEADERS_READ_BY: dict[Callable[..., Any], list[dict[str, Any]]] = {
    command_context: CONTEXT_HEADERS,
    command_call: [IDEMPOTENCY_HEADER, *CONTEXT_HEADERS],
    command_call_if_match: [IDEMPOTENCY_HEADER, IF_MATCH_HEADER, *CONTEXT_HEADERS],
}


def document_headers(router: APIRouter) -> None:
    """Declare in OpenAPI the headers the dependencies above read from `request.headers`, on
    every route of `router` that depends on one of them (so /docs still shows them). Call it
    before the router is included; calling it again adds nothing twice."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(route.openapi_extra or {})
        params = list(extra.get("parameters", []))
        for dependant in _dependants(route.dependant):
            for doc in HEADERS_READ_BY.get(dependant.call, []) if dependant.call is not None else []:
                if doc not in params:
                    params.append(doc)
        if params:
            extra["parameters"] = params
            route.openapi_extra = extra


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


PlatformDep = Annotated[Platform, Depends(platform_dep)]


async def _store(request: Request) -> EventStore:
    return get_platform(request).store


async def _read_models(request: Request) -> ReadModelStore:
    return get_platform(request).read_models


async def _jobs(request: Request) -> CommandHandler[JobCommand, JobState]:
    return get_platform(request).jobs


async def _clients(request: Request) -> CommandHandler[ClientCommand, ClientState]:
    return get_platform(request).clients


async def _fleet(request: Request) -> CommandHandler[FleetCommand, FleetState]:
    return get_platform(request).fleet


async def _projections(request: Request) -> ProjectionRunner:
    return get_platform(request).projections


async def _live(request: Request) -> LiveFeed:
    return get_platform(request).live


async def _audit(request: Request) -> AuditTrail:
    return get_platform(request).audit


async def _artifacts(request: Request) -> ArtifactStore:
    return get_platform(request).artifacts


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
CallDep = Annotated[Call, Depends(command_call)]
CallIfMatchDep = Annotated[Call, Depends(command_call_if_match)]
