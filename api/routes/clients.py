"""Fleet commands and queries: /clients..."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api.deps import CallDep, ReadModelsDep
from api.errors import NotFound
from api.responses import Json
from api.routes.jobs import accepted
from api.schemas import ClientOut, ClientPage, CommandAccepted
from domain import commands as c
from domain.values import ID_PATTERN

router = APIRouter(prefix="/clients", tags=["clients"])
ClientId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]


@router.post("", status_code=201, response_model=CommandAccepted, summary="Register a client device")
async def register_client(
    body: c.RegisterClient,
    call: CallDep,
) -> Json:
    result = await call.platform.clients.execute(body.client_id, body, call.ctx, idempotency_key=call.key)
    return await accepted(call.platform.projections, result, 201)


@router.post("/{client_id}/leave", response_model=CommandAccepted, summary="A client leaves the fleet")
async def leave_fleet(
    client_id: ClientId,
    call: CallDep,
    body: c.LeaveFleet | None = None,
) -> Json:
    result = await call.platform.clients.execute(client_id, body or c.LeaveFleet(), call.ctx, idempotency_key=call.key)
    return await accepted(call.platform.projections, result)


@router.get("", response_model=ClientPage, response_model_exclude_unset=True, summary="The client fleet")
async def list_clients(
    rm: ReadModelsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    items = await rm.list_docs("client_fleet", limit, offset)
    return {"items": items, "total": await rm.count("client_fleet"), "limit": limit, "offset": offset}


@router.get("/{client_id}", response_model=ClientOut, response_model_exclude_unset=True, summary="One client")
async def get_client(client_id: ClientId, rm: ReadModelsDep) -> dict[str, Any]:
    doc = await rm.get("client_fleet", client_id)
    if doc is None:
        raise NotFound(f"client {client_id} not found")
    return doc
