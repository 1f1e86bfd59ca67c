"""The SuperLink launcher (`fl_runtime.fast_link`): each single-API middleware of Flower sees exactly
the requests it acts on, in Flower's order; every other request skips it; each one's next app is
called in place (`inline_middleware`) (real Starlette, real Flower middleware stack). A whole job
through it runs in the engine tests."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from flwr.superlink import main as superlink_main
from flwr.superlink.routers.control.middlewares import ControlAuthenticationMiddleware
from flwr.superlink.routers.fleet.node_auth import NodeAuthMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from fl_runtime import fast_link
from fl_runtime.inline_middleware import InlineDispatch

SEEN: list[str] = []


class Outer(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        SEEN.append(f"outer {request.url.path}")
        return await call_next(request)


class FleetOnly(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        SEEN.append(f"fleet {request.url.path}")
        response = await call_next(request)
        response.headers["x-fleet"] = "1"
        return response


class ControlOnly(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        SEEN.append(f"control {request.url.path}")
        return await call_next(request)


async def endpoint(request: Request) -> Response:
    SEEN.append(f"handler {request.url.path}")
    return PlainTextResponse("ok")


@pytest.mark.asyncio
async def test_scoped_middleware_runs_only_under_its_prefix_and_keeps_the_order() -> None:
    stack = [Middleware(Outer), Middleware(ControlOnly), Middleware(FleetOnly)]
    scoped = fast_link.scoped_middleware(stack, {FleetOnly: "/v1/fleet/", ControlOnly: "/v1/control/"})
    classes: list[object] = [m.cls for m in scoped]
    assert classes == [InlineDispatch, fast_link.PathScoped, fast_link.PathScoped]
    inner: list[object] = [m.kwargs["middleware"].cls for m in scoped]  # type: ignore[attr-defined]
    assert inner == [Outer, InlineDispatch, InlineDispatch]
    routes = [Route(p, endpoint, methods=["POST"]) for p in ("/v1/fleet/pull", "/v1/control/list", "/v1/runtime/x")]
    app = Starlette(routes=routes, middleware=scoped)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://link") as client:
        SEEN.clear()
        fleet = await client.post("/v1/fleet/pull")
        assert SEEN == ["outer /v1/fleet/pull", "fleet /v1/fleet/pull", "handler /v1/fleet/pull"]
        assert fleet.headers["x-fleet"] == "1"  # the scoped middleware still wraps the response
        SEEN.clear()
        await client.post("/v1/control/list")
        assert SEEN == ["outer /v1/control/list", "control /v1/control/list", "handler /v1/control/list"]
        SEEN.clear()
        runtime = await client.post("/v1/runtime/x")
        assert SEEN == ["outer /v1/runtime/x", "handler /v1/runtime/x"] and "x-fleet" not in runtime.headers


def test_flowers_stack_keeps_its_order_with_the_single_api_layers_scoped() -> None:
    flower = superlink_main._get_middleware()
    module = SimpleNamespace(_get_middleware=superlink_main._get_middleware)
    fast_link.install_scoped_middleware(module)
    ours = module._get_middleware()
    assert len(ours) == len(flower) == 8
    prefixes = fast_link.flower_prefixes()
    assert prefixes[NodeAuthMiddleware] == "/v1/fleet/" and prefixes[ControlAuthenticationMiddleware] == "/v1/control/"
    scoped = 0
    for theirs, mine in zip(flower, ours, strict=True):
        cls: object = theirs.cls
        if isinstance(cls, type) and cls in prefixes:
            scoped += 1
            assert mine.cls is fast_link.PathScoped and mine.kwargs["prefix"] == prefixes[cls]
            mine = mine.kwargs["middleware"]
        else:  # the error translator and the protobuf translation see every request
            assert not isinstance(cls, type) or cls not in prefixes
        assert mine.cls is InlineDispatch  # each one's next app called in place on the unary APIs
        inner = mine.kwargs["middleware"]
        assert inner.cls is theirs.cls and inner.kwargs == theirs.kwargs
    assert scoped == 6
