"""The SuperNodes allowed into the federation: /fleet/nodes (operators and admins).

Registering records NodeRegistered with the key's fingerprint (the key itself is kept in the
artifact store under that fingerprint for the fleet process manager); revoking records
NodeRevoked. Both go through the fleet decider, so the fleet stream says who let which device in."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ArtifactsDep, ContextDep, FleetDep, ProjectionsDep, ReadModelsDep
from api.errors import NotFound, problem
from api.responses import Json
from api.routes.jobs import accepted
from api.schemas import CommandAccepted
from commands.fleet import MAX_KEY_TEXT, BadKey, register_node, revoke_node
from domain.values import ID_PATTERN, EntityId
from projections.client_fleet import flower_client_id

router = APIRouter(prefix="/fleet", tags=["fleet"])
NodeName = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
WHERE_NODES = {"kind": "supernode"}


class NodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: EntityId
    public_key: str = Field(min_length=1, max_length=MAX_KEY_TEXT, description="OpenSSH or PEM EC public key")
    certificate: str | None = Field(
        default=None, max_length=MAX_KEY_TEXT, description="optional PEM certificate; must be for the same key"
    )
    reason: str = Field(default="", max_length=2000)


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class NodeOut(BaseModel):
    name: str
    fingerprint: str
    status: str = Field(description="registered | connected | revoked")
    flower_node_id: str | None = None
    registered_at: str | None = None
    registered_by: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    last_seen_at: str | None = None
    jobs: list[str] = Field(default_factory=list)


class NodePage(BaseModel):
    items: list[NodeOut]
    total: int


@router.post(
    "/nodes",
    status_code=201,
    response_model=CommandAccepted,
    responses={422: {"description": "malformed key, or a certificate for another key"}, 409: {}},
    summary="Let a SuperNode (its public key) into the federation",
)
async def add_node(
    body: NodeIn, fleet: FleetDep, artifacts: ArtifactsDep, projections: ProjectionsDep, ctx: ContextDep
) -> Any:
    try:
        result = await register_node(
            fleet, artifacts, body.name, body.public_key, reason=body.reason, certificate=body.certificate, ctx=ctx
        )
    except BadKey as exc:
        return problem(422, "Invalid Input", f"public_key: {exc}")
    return await accepted(projections, result, 201)


@router.delete("/nodes/{name}", response_model=CommandAccepted, summary="Revoke a SuperNode")
async def remove_node(
    name: NodeName, fleet: FleetDep, projections: ProjectionsDep, ctx: ContextDep, reason: str = ""
) -> Json:
    result = await revoke_node(fleet, name, reason=reason[:2000], ctx=ctx)
    return await accepted(projections, result)


async def _with_runtime_view(rm: ReadModelsDep, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each node with the jobs and last sighting the runtime reported for its Flower node id."""
    ids = [flower_client_id(d["flower_node_id"]) for d in docs if d.get("flower_node_id")]
    seen = await rm.get_many("client_fleet", ids) if ids else {}
    out = []
    for doc in docs:
        node: dict[str, Any] = {k: doc.get(k) for k in NodeOut.model_fields if k not in ("jobs", "last_seen_at")}
        jobs: list[str] = list(doc.get("jobs", []))
        last_seen: str = doc.get("last_seen_at") or ""
        runtime = seen.get(flower_client_id(doc["flower_node_id"])) if doc.get("flower_node_id") else None
        if runtime is not None:
            jobs += [j for j in runtime["jobs"] if j not in jobs]
            last_seen = max(last_seen, runtime.get("last_seen_at") or "")
        out.append({**node, "jobs": jobs, "last_seen_at": last_seen or None})
    return out


@router.get("/nodes", response_model=NodePage, summary="The fleet's SuperNodes")
async def list_nodes(
    rm: ReadModelsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    docs = await rm.list_docs("client_fleet", limit, offset, WHERE_NODES)
    return {"items": await _with_runtime_view(rm, docs), "total": await rm.count("client_fleet", WHERE_NODES)}


@router.get("/nodes/{name}", response_model=NodeOut, summary="One SuperNode")
async def get_node(name: NodeName, rm: ReadModelsDep) -> dict[str, Any]:
    doc = await rm.get("client_fleet", name)
    if doc is None or doc.get("kind") != "supernode":
        raise NotFound(f"node {name} not found")
    return (await _with_runtime_view(rm, [doc]))[0]
