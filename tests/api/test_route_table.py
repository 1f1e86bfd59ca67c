"""api/route_table.py: routes put on the app itself behave and document as FastAPI's
include_router made them; the platform's app has no lazily matched router branch left, and
every route is guarded (api/auth/guard.py)."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Route

from api.app import create_app
from api.auth.guard import GuardedRoute
from api.route_table import add_routes
from flp.wiring import Container


class Item(BaseModel):
    name: str
    size: int = 1


def mark(name: str) -> DependsParam:
    def dependency(request: Request) -> None:
        request.state.seen = [*getattr(request.state, "seen", []), name]

    return DependsParam(dependency)


def sample_router() -> APIRouter:
    router = APIRouter(prefix="/items", tags=["items"], dependencies=[mark("router")])

    @router.post("", status_code=201, response_model=Item, summary="Make one", dependencies=[mark("route")])
    async def make(item: Item, request: Request) -> Item:
        return item.model_copy(update={"name": ",".join(request.state.seen)})

    @router.get("/{item_id}", responses={404: {"description": "none"}})
    async def one(item_id: int, size: Annotated[int, Depends(lambda: 7)]) -> Item:
        return Item(name=str(item_id), size=size)

    return router


def sample_app(register: str) -> FastAPI:
    app = FastAPI(dependencies=[mark("app")])
    if register == "include":
        app.include_router(sample_router())
    else:
        add_routes(app, sample_router())
    return app


def test_the_openapi_document_is_the_one_include_router_makes() -> None:
    assert sample_app("add").openapi() == sample_app("include").openapi()


@pytest.mark.parametrize("register", ["include", "add"])
async def test_dependencies_run_app_first_then_router_then_route(register: str) -> None:
    transport = httpx.ASGITransport(app=sample_app(register))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        made = await http.post("/items", json={"name": "x"})
        assert made.status_code == 201
        assert made.json() == {"name": "app,router,route", "size": 1}
        assert (await http.get("/items/5")).json() == {"name": "5", "size": 7}
        assert (await http.get("/items/five")).status_code == 422
        assert (await http.delete("/items/5")).status_code == 405


def test_only_api_routes_can_be_added() -> None:
    router = APIRouter()
    router.add_route("/plain", lambda request: PlainTextResponse("plain"))
    with pytest.raises(TypeError, match="only API routes"):
        add_routes(FastAPI(), router)


def test_the_platform_app_matches_every_route_on_its_own_table(container: Container) -> None:
    app = create_app(container, manage_lifespan=False)
    routes = [r for r in app.router.routes if isinstance(r, APIRoute)]
    assert len(routes) > 50
    assert all(isinstance(r, APIRoute | Route) for r in app.router.routes), "an included router branch"
    assert all(isinstance(r, GuardedRoute) for r in routes), "a route without the authorize guard"


async def test_the_guard_answers_before_the_body_is_read(api: httpx.AsyncClient) -> None:
    """GuardedRoute runs `authorize` ahead of the route's dependencies and body: no token is a
    401 even for a body that is not JSON."""
    refused = await api.post(
        "/jobs", content=b"{not json", headers={"Authorization": "", "Content-Type": "application/json"}
    )
    assert refused.status_code == 401, refused.text
