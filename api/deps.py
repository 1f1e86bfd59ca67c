"""FastAPI dependencies: the container and the caller's command context."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Request

from api.ports import Platform
from commands.handlers import CommandContext

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def get_container(request: Request) -> Platform:
    container: Platform = request.app.state.container
    return container


def command_context(
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


ContainerDep = Annotated[Platform, Depends(get_container)]
ContextDep = Annotated[CommandContext, Depends(command_context)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200)]
IfMatch = Annotated[int | None, Header(alias="If-Match", ge=0, description="expected stream version")]
