"""api/route_table.py: routes put on the app itself behave and document as FastAPI's
include_router made them; the platform's app has no lazily matched router branch left, and
every route is guarded (api/auth/guard.py)."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.params import Depends as DependsParam
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.endpoints import HTTPEndpoint
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import Mount, Route

from api.app import create_app
from api.auth.guard import GuardedRoute
from api.route_table import RouteIndex, add_routes, index_routes
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


class AnyMethod(HTTPEndpoint):
    async def get(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("any get")

    async def patch(self, request: Request) -> PlainTextResponse:
        return PlainTextResponse("any patch")


def indexed_and_plain() -> tuple[FastAPI, FastAPI]:
    """Two apps with the same tricky table: a parameter as first segment ahead of literal routes,
    one path under several methods, a route for any method, a mount, a trailing slash."""

    def build() -> FastAPI:
        app = FastAPI()

        def answer(name: str) -> Any:
            async def endpoint(request: Request) -> PlainTextResponse:
                return PlainTextResponse(f"{name} {sorted(request.path_params.items())}")

            return endpoint

        app.router.routes.append(Route("/jobs", answer("jobs-get"), methods=["GET"]))
        app.router.routes.append(Route("/jobs", answer("jobs-post"), methods=["POST"]))
        app.router.routes.append(Route("/{kind}/special", answer("kind-special"), methods=["GET"]))
        app.router.routes.append(Route("/jobs/{job_id}", answer("job"), methods=["GET", "DELETE"]))
        app.router.routes.append(Route("/any", AnyMethod))  # an endpoint class: every method it defines
        app.router.routes.append(Route("/slash/", answer("slash"), methods=["GET"]))
        app.router.routes.append(Mount("/files", routes=[Route("/{name}", answer("file"), methods=["GET"])]))
        return app

    indexed = build()
    index_routes(indexed)
    return indexed, build()


REQUESTS = [
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("PUT", "/jobs"),  # 405: the path exists, not the method
    ("GET", "/jobs/special"),  # the parameter route comes first and wins
    ("GET", "/jobs/j1"),
    ("DELETE", "/jobs/j1"),
    ("POST", "/jobs/j1"),
    ("HEAD", "/jobs/j1"),
    ("PATCH", "/any"),
    ("PUT", "/any"),  # the class answers 405 itself
    ("GET", "/slash"),  # redirected to /slash/
    ("GET", "/files/a.txt"),
    ("GET", "/nowhere"),
    ("GET", "/"),
    ("BREW", "/jobs"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_the_route_index_answers_as_the_full_scan_does(method: str, path: str) -> None:
    indexed, plain = indexed_and_plain()
    answers = []
    for app in (indexed, plain):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.request(method, path, follow_redirects=False)
            answers.append((r.status_code, r.headers.get("location"), r.headers.get("allow"), r.text))
    assert answers[0] == answers[1]
    assert answers[0][0] != 500


def test_the_route_index_skips_routes_that_cannot_match() -> None:
    indexed, _ = indexed_and_plain()
    index = indexed.router.middleware_stack
    assert isinstance(index, RouteIndex)
    index._build(indexed.router.routes)
    names = [getattr(r, "path", "") for r in index._buckets[("GET", "jobs")]]
    assert names == ["/jobs", "/{kind}/special", "/jobs/{job_id}", "/files"]  # in the table's order
    assert [getattr(r, "path", "") for r in index._anywhere["POST"]] == ["/files"]
    assert "/any" in [getattr(r, "path", "") for r in index._buckets[("GET", "any")]]  # no methods: every one
    assert ("PATCH", "any") not in index._buckets  # a method no route names: the router's own scan


async def test_routes_added_after_the_index_are_found() -> None:
    indexed, _ = indexed_and_plain()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=indexed), base_url="http://t") as client:
        assert (await client.get("/late")).status_code == 404
        indexed.router.routes.append(Route("/late", lambda _: PlainTextResponse("late"), methods=["GET"]))
        assert (await client.get("/late")).text == "late"


async def test_a_replaced_route_is_not_served_from_a_stale_index() -> None:
    indexed, _ = indexed_and_plain()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=indexed), base_url="http://t") as client:
        assert (await client.get("/files/a")).status_code == 200
        indexed.router.routes[-1] = Route("/files/{name}", lambda _: PlainTextResponse("new"), methods=["GET"])
        assert (await client.get("/files/a")).text == "new"


def test_the_index_refuses_a_router_with_middleware_of_its_own() -> None:
    app = FastAPI()
    app.router.middleware_stack = GZipMiddleware(app.router.app)
    with pytest.raises(TypeError, match="middleware of its own"):
        index_routes(app)


def test_the_platform_app_routes_through_the_index(container: Container) -> None:
    app = create_app(container, manage_lifespan=False)
    assert isinstance(app.router.middleware_stack, RouteIndex)


async def test_a_route_added_to_the_platform_app_directly_is_guarded(container: Container) -> None:
    app = create_app(container, manage_lifespan=False)

    @app.get("/extra")
    async def extra() -> dict[str, str]:
        return {"leak": "yes"}

    assert isinstance(app.router.routes[-1], GuardedRoute)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        answer = await client.get("/extra")
    assert answer.status_code == 403, answer.text  # no rule in api/auth/rules.py: refused to all
    assert "leak" not in answer.text
