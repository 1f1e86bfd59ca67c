# ruff: noqa: E501  (the request bodies stay one per line, as sent)
"""api/fast_handler.py: a model body validated in one step and request-only dependencies called
directly answer exactly as FastAPI's own handler does, for the platform's command bodies and
headers, valid or not; dependency overrides still apply; the platform's routes use it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from api import fast_handler
from api.app import create_app
from api.deps import Call, CallDep, command_call
from api.errors import install_error_handlers
from api.fast_handler import FastHandler
from api.schemas import JoinRequest, StartJobRequest
from domain.commands import RecordRoundResult
from flp.wiring import Container


class FastRoute(APIRoute):
    """What GuardedRoute does, without the guard."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fast = FastHandler.of(self)
        return fast.handler(self, APIRoute.get_route_handler) if fast else super().get_route_handler()


def called(call: Call) -> dict[str, Any]:
    return {"actor": call.ctx.actor, "key": call.key, "correlation": call.ctx.correlation_id}


def both() -> tuple[FastAPI, FastAPI]:
    declared, fast = FastAPI(), FastAPI()
    fast.router.route_class = FastRoute
    for app in (declared, fast):
        install_error_handlers(app)
        app.state.platform = "the platform"  # what command_call hands on

        @app.post("/jobs")
        async def start(body: StartJobRequest) -> dict[str, Any]:
            return {"got": body.model_dump(mode="json")}

        @app.post("/jobs/{job_id}/rounds")
        async def rounds(job_id: str, body: RecordRoundResult, request: Request) -> dict[str, Any]:
            return {"job": job_id, "got": body.model_dump(mode="json"), "path": request.url.path}

        @app.post("/join")
        async def join(body: JoinRequest) -> dict[str, Any]:
            return {"got": body.model_dump(mode="json")}

        @app.post("/jobs/{job_id}/clients")
        async def with_call(job_id: str, body: JoinRequest, call: CallDep) -> dict[str, Any]:
            return {"job": job_id, "got": body.model_dump(mode="json"), "call": called(call)}

        @app.get("/twice")
        async def twice(a: CallDep, b: CallDep) -> dict[str, Any]:
            return {"same": a is b}

        async def teapot() -> None:
            raise HTTPException(418, "the route's own dependency runs first")

        @app.get("/guarded", dependencies=[Depends(teapot)])
        async def guarded(call: CallDep) -> dict[str, Any]:
            return called(call)

        @app.get("/calls/{n}")
        async def only_call(n: int, call: CallDep, request: Request) -> dict[str, Any]:
            return {"n": n, "call": called(call), "path": request.url.path}

    return declared, fast


JSON = "application/json"
JOB = b'{"name": "n", "rounds": 3, "min_clients": 1}'
BODIES: list[tuple[str, str | None, bytes]] = [
    ("/jobs", JSON, JOB),
    ("/jobs", "application/json; charset=utf-8", JOB),
    ("/jobs", "Application/JSON", JOB),
    ("/jobs", "application/vnd.flp+json", JOB),
    ("/jobs", "application/a/b+json", JOB),  # email.message reads it as text/plain
    ("/jobs", "text/plain", JOB),
    ("/jobs", None, JOB),
    ("/jobs", JSON, b""),
    ("/jobs", JSON, b"{"),
    ("/jobs", JSON, b"[]"),
    ("/jobs", JSON, b"null"),
    ("/jobs", JSON, b'{"name": "n", "rounds": "3", "min_clients": 1.0}'),
    ("/jobs", JSON, b'{"name": "n", "rounds": true, "min_clients": 1}'),
    ("/jobs", JSON, b'{"name": "n", "rounds": 3.5, "min_clients": 1}'),
    ("/jobs", JSON, b'{"name": "n", "rounds": 3, "min_clients": 1, "hyperparameters": {"lr": NaN}}'),
    ("/jobs", JSON, b'{"name": "n", "rounds": 3, "min_clients": 1, "hyperparameters": {"lr": 1e400}}'),
    (
        "/jobs",
        JSON,
        b'{"name": "n", "rounds": 3, "min_clients": 1, "hyperparameters": {"big": 123456789012345678901234567890}}',
    ),
    ("/jobs", JSON, b'{"name": "n", "rounds": 3, "min_clients": 1, "hyperparameters": {"a": [1]}}'),
    (
        "/jobs",
        JSON,
        b'{"name": "n", "rounds": 3, "min_clients": 1, "hyperparameters": {"a": 1, "b": 0.5, "c": false, "d": "x"}}',
    ),
    ("/jobs", JSON, b'{"name": "\\ud800", "rounds": 3, "min_clients": 1}'),
    ("/jobs", JSON, b'{"name": "\\u0000", "rounds": 3, "min_clients": 1}'),
    ("/jobs", JSON, b'{"name": "n", "name": "m", "rounds": 3, "min_clients": 1}'),
    ("/jobs", JSON, b'{"name": "n", "rounds": 3, "min_clients": 1, "unknown": 1}'),
    ("/jobs", JSON, b'{"job_id": "bad id!", "name": "n", "rounds": 3, "min_clients": 1}'),
    ("/jobs", JSON, '{"name": "\u00e9t\u00e9", "rounds": 3, "min_clients": 1}'.encode()),
    ("/jobs", JSON, b'\xff\xfe{"name": "n"}'),
    ("/jobs", JSON, b'  {"name": "n", "rounds": 3, "min_clients": 1}  '),
    (
        "/jobs/j1/rounds",
        JSON,
        b'{"round": 1, "results": [{"client_id": "a", "num_examples": 10, "metrics": {"loss": 0.5}}], "central_metrics": {"accuracy": 0.9}}',
    ),
    (
        "/jobs/j1/rounds",
        JSON,
        b'{"round": 1, "results": [{"client_id": "a", "num_examples": -1, "metrics": {"loss": "x"}}]}',
    ),
    ("/jobs/j1/rounds", JSON, b'{"round": 0, "results": {}}'),
    ("/join", JSON, b'{"client_id": "c1"}'),
    ("/join", JSON, b'{"client_id": 5}'),
    ("/join", JSON, b'"c1"'),
]


HEADERS: list[tuple[str, dict[str, str]]] = [
    ("/calls/1", {}),
    ("/calls/1", {"Idempotency-Key": "k1", "X-Correlation-ID": "c1"}),
    ("/calls/1", {"Idempotency-Key": ""}),  # too short: 422 from the dependency
    ("/calls/1", {"Idempotency-Key": "k" * 201}),
    ("/calls/x", {"Idempotency-Key": ""}),  # a bad path parameter and a bad header
    ("/calls/x", {}),
    ("/twice", {}),  # one call per request, one value, as FastAPI's cache gives
    ("/guarded", {"Idempotency-Key": ""}),  # the route's dependencies=[...] first
]


@pytest.mark.parametrize(("path", "headers"), HEADERS)
async def test_dependency_answers_are_fastapis(path: str, headers: dict[str, str]) -> None:
    answers = []
    for app in both():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.get(path, headers=headers)
            answers.append((r.status_code, r.json()))
            for body in (b'{"client_id": "c1"}', b'{"client_id": 5}'):
                r = await client.post("/jobs/j1/clients", content=body, headers={**headers, "content-type": JSON})
                answers.append((r.status_code, r.json()))
    assert answers[: len(answers) // 2] == answers[len(answers) // 2 :]


async def _next_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return messages.pop(0) if messages else {"type": "http.disconnect"}


async def _record(sent: list[MutableMapping[str, Any]], message: MutableMapping[str, Any]) -> None:
    sent.append(message)


async def test_a_client_gone_mid_body_gets_fastapis_answer() -> None:
    answers = []
    for app in both():
        sent: list[MutableMapping[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/jobs",
            "raw_path": b"/jobs",
            "query_string": b"",
            "root_path": "",
            "client": ("t", 1),
            "server": ("t", 80),
            "headers": [(b"host", b"t"), (b"content-type", b"application/json")],
        }
        messages: list[dict[str, Any]] = [
            {"type": "http.request", "body": b'{"name": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
        receive = functools.partial(_next_message, messages)
        send = functools.partial(_record, sent)
        await app(scope, receive, send)
        answers.append([m.get("status") for m in sent if m["type"] == "http.response.start"])
    assert answers[0] == answers[1] == [400]


async def test_dependency_overrides_still_apply() -> None:
    _, fast = both()

    async def someone_else(request: Request) -> Call:
        call = await command_call(request)
        return Call(call.platform, call.ctx, "overridden")

    fast.dependency_overrides[command_call] = someone_else
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://t") as client:
        r = await client.get("/calls/1")
    assert r.json()["call"]["key"] == "overridden"


@pytest.mark.parametrize(("path", "content_type", "body"), BODIES)
async def test_answers_are_fastapis(path: str, content_type: str | None, body: bytes) -> None:
    answers = []
    for app in both():
        headers = {"content-type": content_type} if content_type else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.post(path, content=body, headers=headers)
            answers.append((r.status_code, r.headers["content-type"], r.json()))
    assert answers[0] == answers[1]


async def test_a_valid_body_takes_the_one_step_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path really answers a valid body (FastAPI's path never reads it)."""
    taken: list[type[BaseModel]] = []
    validate = FastHandler.validate

    def counted(self: FastHandler, body: bytes) -> BaseModel | None:
        value = validate(self, body)
        if value is not None:
            taken.append(type(value))
        return value

    monkeypatch.setattr(FastHandler, "validate", counted)
    _, fast = both()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://t") as client:
        assert (await client.post("/jobs", content=JOB, headers={"content-type": JSON})).status_code == 200
        assert (await client.post("/jobs", content=b"{", headers={"content-type": JSON})).status_code == 422
    assert taken == [StartJobRequest]


def test_the_platform_routes_take_their_model_bodies_in_one_step(container: Container) -> None:
    app = create_app(container, manage_lifespan=False)
    handlers = {
        (sorted(r.methods or [])[0], r.path): FastHandler.of(r) for r in app.router.routes if isinstance(r, APIRoute)
    }
    assert handlers[("POST", "/jobs")] == FastHandler(("body", StartJobRequest), (("call", "request", command_call),))
    rounds = handlers[("POST", "/jobs/{job_id}/rounds")]
    assert rounds is not None and rounds.body is not None
    # an optional body (`Model | None`) stays FastAPI's: an empty body means None there
    assert handlers[("POST", "/jobs/{job_id}/cancel")] is None
    one_job = handlers[("GET", "/jobs/{job_id}")]
    assert one_job is not None and one_job.body is None and [n for n, _, _ in one_job.dependencies] == ["rm"]


def test_the_content_types_read_as_json() -> None:
    assert fast_handler._is_json("application/json")
    assert fast_handler._is_json("application/problem+json; charset=utf-8")
    assert not fast_handler._is_json("application/jsonx")
    assert not fast_handler._is_json("text/json")
    assert not fast_handler._is_json(None)
