"""`fl_runtime.inline_middleware`: Flower's own HTTP middlewares (error translator, protobuf
translation) answer exactly as they do under Starlette's `BaseHTTPMiddleware` when their next app
is called in place, for answers, Flower errors, HTTP errors, crashes and bad payloads alike; other
paths keep Flower's layer (a stream still streams)."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from flwr.proto.run_pb2 import GetRunRequest, GetRunResponse, Run
from flwr.supercore.error import ApiErrorCode, FlowerError
from flwr.supercore.error.http import http_error_translator
from flwr.supercore.protobuf.constants import PROTOBUF_MEDIA_TYPE
from flwr.supercore.protobuf.routing import ProtobufRoute
from flwr.supercore.protobuf.translation import PROTOBUF_REQUEST_DEPENDENCY, ProtobufTranslationMiddleware
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware

from fl_runtime.inline_middleware import InlineDispatch, inlined, install, unary_paths

PROTOBUF = {"content-type": PROTOBUF_MEDIA_TYPE}


def client_of(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://link")


def flower_like_app(inline: bool) -> FastAPI:
    """Flower's SuperNode stack (error translator outermost, then protobuf translation) over a
    Fleet-style protobuf router whose handler answers, or fails as asked by the run id."""
    stack = [Middleware(BaseHTTPMiddleware, dispatch=http_error_translator), Middleware(ProtobufTranslationMiddleware)]
    app = FastAPI(middleware=[inlined(layer) for layer in stack] if inline else stack)
    router = APIRouter(prefix="/v1/fleet", route_class=ProtobufRoute)

    @router.post("/get-run")
    def get_run(request: Annotated[GetRunRequest, PROTOBUF_REQUEST_DEPENDENCY]) -> GetRunResponse:
        if request.run_id == 1:
            raise FlowerError(ApiErrorCode.INVALID_PROTOBUF_PAYLOAD, "told to fail")
        if request.run_id == 2:
            raise HTTPException(status_code=401, detail="Invalid SuperNode authentication")
        if request.run_id == 3:
            raise RuntimeError("a crash")
        return GetRunResponse(run=Run(run_id=request.run_id, fab_id="fab"))

    app.include_router(router)

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def chunks() -> Iterator[bytes]:
            yield from (b"one ", b"two ", b"three")

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.middleware("http")
    async def mark(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        response.headers["x-inner"] = "seen"
        return response

    return app


CASES = [
    ("answer", GetRunRequest(run_id=7).SerializeToString(), PROTOBUF),
    ("flower error", GetRunRequest(run_id=1).SerializeToString(), PROTOBUF),
    ("http error", GetRunRequest(run_id=2).SerializeToString(), PROTOBUF),
    ("crash", GetRunRequest(run_id=3).SerializeToString(), PROTOBUF),
    ("bad payload", b"\xff\xff\xff", PROTOBUF),
    ("wrong media type", GetRunRequest(run_id=7).SerializeToString(), {"content-type": "application/json"}),
]


@pytest.mark.parametrize(("case", "body", "headers"), CASES, ids=[case for case, _, _ in CASES])
async def test_flower_layers_answer_the_same_when_inlined(case: str, body: bytes, headers: dict[str, str]) -> None:
    answers = []
    for inline in (False, True):
        async with client_of(flower_like_app(inline)) as client:
            response = await client.post("/v1/fleet/get-run", content=body, headers=headers)
            answers.append((response.status_code, sorted(response.headers.items()), response.content))
    plain, inlined_answer = answers
    assert inlined_answer == plain
    if case == "answer":
        assert plain[0] == 200
        assert GetRunResponse.FromString(plain[2]).run.run_id == 7
        assert ("x-inner", "seen") in plain[1]  # a header an inner layer set reaches the client
    else:
        assert plain[0] >= 400, case


async def test_the_stack_is_inlined_and_other_paths_keep_flowers_layer() -> None:
    app = flower_like_app(inline=True)
    kinds: list[object] = [layer.cls for layer in app.user_middleware]
    assert kinds[1:] == [InlineDispatch, InlineDispatch]
    async with client_of(app) as client:
        assert (await client.get("/stream")).text == "one two three"
        assert (await client.get("/v1/fleet/nowhere")).status_code == 404

    answers: dict[str, str] = {}

    async def records(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        answers[request.url.path] = "streamed" if hasattr(response, "body_iterator") else "whole"
        return response

    paths = frozenset({"/v1/runtime/pull-messages"})
    app = FastAPI(middleware=[inlined(Middleware(BaseHTTPMiddleware, dispatch=records), paths)])
    app.get("/v1/runtime/pull-messages")(lambda: {"ok": True})
    app.get("/v1/runtime/responses")(lambda: {"ok": True})
    async with client_of(app) as client:
        assert (await client.get("/v1/runtime/pull-messages")).json() == {"ok": True}
        assert (await client.get("/v1/runtime/responses")).json() == {"ok": True}
    # in place on a unary RPC; through Flower's BaseHTTPMiddleware (which streams) elsewhere
    assert answers == {"/v1/runtime/pull-messages": "whole", "/v1/runtime/responses": "streamed"}


def test_only_flowers_unary_protobuf_rpcs_are_inlined() -> None:
    paths = unary_paths()
    assert {"/v1/fleet/pull-messages", "/v1/fleet/pull-object", "/v1/runtime/push-object"} <= paths
    assert "/v1/runtime/responses" not in paths  # flwr 1.42's model responses can stream (SSE)
    assert not any(path.startswith("/v1/control/") for path in paths)  # Control has streams


def test_a_layer_that_is_not_base_http_is_left_as_it_is() -> None:
    layer = Middleware(InlineDispatch, middleware=Middleware(ProtobufTranslationMiddleware))
    assert inlined(layer) is layer


@pytest.mark.timeout(20)  # without the replay the next app would wait for a body that never comes
async def test_the_body_a_layer_read_reaches_the_next_app() -> None:
    seen: list[bytes] = []

    async def reads_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        assert await request.body() == b"payload"
        return await call_next(request)

    paths = frozenset({"/v1/runtime/echo"})
    app = FastAPI(middleware=[inlined(Middleware(BaseHTTPMiddleware, dispatch=reads_body), paths)])

    @app.post("/v1/runtime/echo")
    async def echo(request: Request) -> dict[str, int]:
        seen.append(await request.body())
        return {"length": len(seen[-1])}

    async with client_of(app) as client:
        assert (await client.post("/v1/runtime/echo", content=b"payload")).json() == {"length": 7}
    assert seen == [b"payload"]


def test_flowers_supernode_app_is_built_with_its_two_layers_inlined() -> None:
    from flwr.supernode import main as supernode_main

    module = SimpleNamespace(create_app=supernode_main.create_app)
    install(module)
    app = module.create_app()
    assert [layer.cls for layer in app.user_middleware] == [InlineDispatch, InlineDispatch]
    inner = [layer.kwargs["middleware"] for layer in app.user_middleware]
    assert [layer.cls for layer in inner] == [BaseHTTPMiddleware, ProtobufTranslationMiddleware]
    assert inner[0].kwargs["dispatch"] is http_error_translator  # Flower's error translator, outermost
