"""Flower's `BaseHTTPMiddleware` layers with their next app called in place on its unary APIs.

Written by hand because Starlette's `BaseHTTPMiddleware` runs the rest of the stack, for every
request, in a task of its own behind an anyio task group and two memory streams, so that a
`dispatch` may stream the response it gets back; flwr 1.42's SuperLink puts four such layers in
front of every Fleet request (the error translator, the protobuf translation, node
authentication, the Fleet event log) and its SuperNode two in front of every Runtime API request,
and profiled in a deployment-mode job they were about a fifth of the SuperLink's CPU, more than
the handlers. The protobuf RPCs of the Fleet and Runtime APIs answer one message each, so on their
paths `InlineDispatch` runs the layer's own `dispatch` with a `call_next` that awaits the next
app in the same task and hands back its whole answer as a `Response` (the request body the
`dispatch` read is replayed to it, as Starlette's cached request does). Every other path (the
Control API's streams, `/v1/runtime/responses`, which can stream, health) goes through Flower's
layer unchanged. Flower's code decides everything a layer does; only how `call_next` reaches the
next app differs. Tied to flwr 1.42 and Starlette as pinned, as `fast_link.py` is.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNARY_APIS = ("/v1/fleet/", "/v1/runtime/")


@cache  # one table for every layer of every app in the process
def unary_paths() -> frozenset[str]:
    """The paths of flwr's protobuf RPCs on the Fleet and Runtime APIs (the table its protobuf
    translation parses requests by): each answers one protobuf message."""
    from flwr.supercore.protobuf.translation import PROTOBUF_REQUEST_TYPES

    return frozenset(path for _, path in PROTOBUF_REQUEST_TYPES if path.startswith(UNARY_APIS))


class InlineDispatch:
    """Pure ASGI: `middleware`'s dispatch with the next app awaited in place on `paths` (by
    default `unary_paths()`), Flower's `BaseHTTPMiddleware` layer itself on every other path."""

    def __init__(self, app: ASGIApp, *, middleware: Middleware, paths: frozenset[str] | None = None) -> None:
        self.app = app
        self.paths = unary_paths() if paths is None else paths
        layer = middleware.cls(app, *middleware.args, **middleware.kwargs)
        assert isinstance(layer, BaseHTTPMiddleware), layer  # what `inlined` wraps
        self.layer = layer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.layer(scope, receive, send)
            return

        async def call_next(request: Request) -> Response:
            return await answer_of(self.app, request, receive)

        response = await self.layer.dispatch_func(Request(scope, receive), call_next)
        await response(scope, receive, send)


async def answer_of(app: ASGIApp, request: Request, receive: Receive) -> Response:
    """Run `app` on `request` in this task and return what it answered, body and all. An error
    it raises reaches the caller, as `BaseHTTPMiddleware`'s `call_next` re-raises it."""
    body: bytes | None = getattr(request, "_body", None)  # read by the dispatch already
    downstream = receive if body is None else _replay(body, receive)
    start: Message | None = None
    chunks: list[bytes] = []

    async def collect(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(request.scope, downstream, collect)
    if start is None:
        raise RuntimeError("No response returned.")  # what BaseHTTPMiddleware raises
    response = Response(b"".join(chunks), status_code=start["status"])
    response.raw_headers = list(start.get("headers", []))
    return response


def _replay(body: bytes, receive: Receive) -> Receive:
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def inlined(layer: Middleware, paths: frozenset[str] | None = None) -> Middleware:
    """`layer` made an `InlineDispatch` if it is a `BaseHTTPMiddleware`, else `layer` itself."""
    if isinstance(layer.cls, type) and issubclass(layer.cls, BaseHTTPMiddleware):
        return Middleware(InlineDispatch, middleware=layer, paths=paths)
    return layer


def install(main_module: Any) -> None:
    """Make `main_module.create_app` (flwr's SuperNode app factory, passed in for tests) build
    every app with its `BaseHTTPMiddleware` layers inlined (the SuperLink's stack is inlined
    where `fast_link` scopes it)."""
    build = main_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> Any:
        app = build(*args, **kwargs)
        app.user_middleware = [inlined(layer) for layer in app.user_middleware]
        return app

    main_module.create_app = create_app
