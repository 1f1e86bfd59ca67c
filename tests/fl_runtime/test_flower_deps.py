"""`fl_runtime.flower_deps`: the named `def` dependencies run on the event loop, every other one
still in FastAPI's thread pool, with the same values and per-request caching (real FastAPI, and
Flower's own SuperNode and SuperLink apps). Whole jobs through both run in the engine tests."""

from __future__ import annotations

import threading
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from fl_runtime import flower_deps

THREADS: dict[str, int] = {}
CALLS: list[str] = []


def cheap(request: Request) -> str:
    THREADS["cheap"] = threading.get_ident()
    CALLS.append("cheap")
    return request.headers.get("x-peer", "none")


def blocking() -> str:
    THREADS["blocking"] = threading.get_ident()
    return "pool"


def uses_cheap(peer: Annotated[str, Depends(cheap)]) -> str:  # a second use of `cheap` in the request
    return peer


class Version:
    def __call__(self, request: Request) -> None:
        THREADS["version"] = threading.get_ident()


@pytest.mark.asyncio
async def test_named_dependencies_run_on_the_loop_others_in_the_pool() -> None:
    inner = APIRouter(prefix="/v1")

    @inner.post("/pull")
    def pull(
        peer: Annotated[str, Depends(cheap)],
        again: Annotated[str, Depends(uses_cheap)],
        where: Annotated[str, Depends(blocking)],
    ) -> dict[str, str]:
        return {"peer": peer, "again": again, "where": where}

    outer = APIRouter(dependencies=[Depends(Version())])
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)  # nested includes, as Flower's Runtime router is
    changed = flower_deps.run_on_loop(app, {cheap, Version})
    assert changed >= 3

    loop_thread = threading.get_ident()
    CALLS.clear()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node") as client:
        response = await client.post("/v1/pull", headers={"x-peer": "node-7"})
    assert response.status_code == 200, response.text
    assert response.json() == {"peer": "node-7", "again": "node-7", "where": "pool"}
    assert THREADS["cheap"] == THREADS["version"] == loop_thread
    assert THREADS["blocking"] != loop_thread
    assert CALLS == ["cheap"]  # still solved once per request, as FastAPI caches it


@pytest.mark.parametrize("component", ["supernode", "superlink"])
def test_flowers_apps_have_each_named_dependency_on_the_loop(component: str) -> None:
    """Every name in ON_LOOP still exists in flwr, and in Flower's real app each of its uses
    becomes a coroutine; the task-token lookup (`get_task`) stays a thread-pool call."""
    import importlib

    from fastapi.dependencies.models import Dependant

    main = importlib.import_module(f"flwr.{component}.main")
    targets = flower_deps.on_loop_targets()
    assert len(targets) == len(flower_deps.ON_LOOP)
    app = main.create_app()
    assert flower_deps.run_on_loop(app, targets) > 0
    seen: list[Dependant] = [d for top in flower_deps._dependants(app) for d in flower_deps._walk(top)]
    assert not any(d.call in targets or type(d.call) in targets for d in seen)
    if component == "supernode":
        assert any(getattr(d.call, "__name__", "") == "get_task" and not d.is_coroutine_callable for d in seen)
