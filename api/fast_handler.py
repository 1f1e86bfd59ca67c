"""A route's model body and its request-only dependencies, solved before FastAPI's handler.

Written by hand because FastAPI 0.138 spends, on every request:
- for a model body, four steps: the content type parsed by `email.message`, the bytes decoded
  by the standard library's `json.loads`, the body field solved by its generic parameter code,
  then the model validated from the decoded objects. pydantic-core parses and validates the
  bytes in one step (`model_validate_json`).
- for each dependency, a whole level of its solver: a path, query, header and cookie pass over
  the dependency's (empty) parameters, a cache key, the call. The platform's dependencies
  (api/deps.py) only take the request, so they are called with it directly.
Under `POST /jobs` load those were ~9% and ~6% of the event loop's samples, in-process.

Only the handler changes: the route keeps its declared parameters, so OpenAPI documents them as
before. `FastHandler.handler` builds FastAPI's handler from a copy of the route's dependant
without them, and the endpoint gets the values solved here. A body this path does not take as
it is (another content type, a body that does not validate, bytes that are not strict JSON)
goes to FastAPI's own handler, so every refusal of a body is FastAPI's 422 (or 400), with all its
errors, exactly as before (and so does a body the client stopped sending: FastAPI's 400); so
does every request while the app has dependency overrides. The order stays FastAPI's: the body,
then the dependencies (whose errors propagate as they would), then the path, query and header
parameters. Dependencies are taken only when every one of the route's is request-only and
called once (FastAPI runs the route's own `dependencies=[...]` first, and calls a dependency
declared twice, or also nested, once per request). Validation in JSON mode accepts what the decoded
objects' Python mode accepts for the models here (none declares strict fields: strict mode is
where the two differ), which `tests/api/test_fast_handler.py` checks against FastAPI's own path.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from fastapi import params, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
RequestDependency = Callable[..., Awaitable[Any]]  # called with the request as its one keyword, as FastAPI does

_SOLVED: ContextVar[dict[str, Any]] = ContextVar("flp_solved")


def _effective_route_context() -> object | None:
    """FastAPI's context for a route of an included router, whose handler it builds per request
    from the including router's settings (api/route_table.py avoids those): such a route keeps
    FastAPI's own handler, built from the route as FastAPI sees it."""
    var: ContextVar[object | None] | None = getattr(routing, "_effective_route_context_var", None)
    return var.get() if var is not None else None


def _is_json(content_type: str | None) -> bool:
    """What FastAPI reads as JSON: application/json or application/*+json, any parameters."""
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media.count("/") != 1:
        return False  # (email.message reads such a type as text/plain)
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _request_only(sub: Dependant) -> bool:
    """A dependency FastAPI would call with the request alone: an `async def` taking only it."""
    if sub.name is None or sub.call is None or not inspect.iscoroutinefunction(sub.call):
        return False
    if sub.request_param_name is None or sub.own_oauth_scopes or sub.security_scopes_param_name:
        return False
    parts = (sub.path_params, sub.query_params, sub.header_params, sub.cookie_params, sub.body_params)
    if any(parts) or sub.dependencies or sub._is_security_scheme:
        return False
    others = (sub.websocket_param_name, sub.http_connection_param_name, sub.response_param_name)
    return (
        not any(others) and sub.background_tasks_param_name is None and len(inspect.signature(sub.call).parameters) == 1
    )


def _all_dependencies(dependant: Dependant) -> list[Dependant]:
    """Every dependency of `dependant`, nested ones included."""
    found: list[Dependant] = []
    for sub in dependant.dependencies:
        found.append(sub)
        found.extend(_all_dependencies(sub))
    return found


@dataclasses.dataclass(frozen=True)
class FastHandler:
    """What is solved here: the body (its parameter's name and model) and the dependencies."""

    body: tuple[str, type[BaseModel]] | None
    dependencies: tuple[tuple[str, str, RequestDependency], ...]  # (value name, request parameter, call)

    @classmethod
    def of(cls, route: APIRoute) -> FastHandler | None:
        """For an `async def` endpoint: its body when that is one model taken whole (not
        embedded, not a form, not a sub-dependency's), and its request-only dependencies;
        None when there is neither (FastAPI's handler is then as good)."""
        dependant = route.dependant
        if not inspect.iscoroutinefunction(dependant.call) or _effective_route_context() is not None:
            return None
        takes, body = cls._body(route)
        if not takes:
            return None  # a body FastAPI must take itself
        dependencies: list[tuple[str, str, RequestDependency]] = []
        subs = dependant.dependencies
        calls = [d.call for d in _all_dependencies(dependant)]
        # taken only all together (FastAPI solves them in order, with the route's own
        # `dependencies=[...]` first) and when each is called once (FastAPI calls a dependency
        # declared twice, or also nested, once per request and hands out the same value)
        if all(_request_only(sub) and calls.count(sub.call) == 1 for sub in subs):
            for sub in subs:
                assert sub.name is not None and sub.call is not None and sub.request_param_name is not None
                dependencies.append((sub.name, sub.request_param_name, sub.call))
        if body is None and not dependencies:
            return None
        return cls(body, tuple(dependencies))

    @staticmethod
    def _body(route: APIRoute) -> tuple[bool, tuple[str, type[BaseModel]] | None]:
        """Whether this path can take the route's body, and the body's (name, model) if any."""
        dependant = route.dependant
        if route.body_field is None:
            return True, None
        if len(dependant.body_params) != 1 or route._embed_body_fields:
            return False, None
        field = dependant.body_params[0]
        if route.body_field.name != field.name or isinstance(field.field_info, params.Form):
            return False, None
        model = field.field_info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return False, None  # (an optional body, `Model | None`: an empty body means None there)
        return True, (field.name, model)

    def validate(self, body: bytes) -> BaseModel | None:
        """The model, or None when FastAPI's own path should answer (it has the errors)."""
        assert self.body is not None
        try:
            return self.body[1].model_validate_json(body)
        except ValidationError:
            return None

    def handler(self, route: APIRoute, build: Callable[[APIRoute], Handler]) -> Handler:
        """This path beside FastAPI's handler (`build(route)`), which takes what it refuses."""
        full = build(route)
        dependant = route.dependant
        endpoint = dependant.call
        assert endpoint is not None
        solved_here = {name for name, _, _ in self.dependencies}

        async def call(**values: Any) -> Any:
            values.update(_SOLVED.get())
            return await endpoint(**values)

        lean_dependant = dataclasses.replace(
            dependant,
            body_params=[] if self.body else dependant.body_params,
            dependencies=[sub for sub in dependant.dependencies if sub.name not in solved_here],
            call=call,
        )
        fast = build(copy_route(route, lean_dependant))
        overrides = route.dependency_overrides_provider
        body, dependencies = self.body, self.dependencies

        async def app(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await full(request)
            solved: dict[str, Any] = {}
            if body is not None:
                if not _is_json(request.headers.get("content-type")):
                    return await full(request)
                try:
                    raw = await request.body()
                except Exception:  # a client gone mid-body: FastAPI's handler answers it (400)
                    return await full(request)
                value = self.validate(raw)
                if value is None:
                    return await full(request)  # the same body, cached by the request: FastAPI's 422
                solved[body[0]] = value
            for name, parameter, dependency in dependencies:
                solved[name] = await dependency(**{parameter: request})
            token = _SOLVED.set(solved)
            try:
                return await fast(request)
            finally:
                _SOLVED.reset(token)

        return app


def copy_route(route: APIRoute, dependant: Dependant) -> APIRoute:
    """A shallow copy of `route` with another dependant (and no body field when that has no
    body): only to build a handler from, FastAPI's `get_route_handler` reads these attributes."""
    lean = object.__new__(type(route))
    lean.__dict__.update(route.__dict__)
    lean.dependant = dependant
    if not dependant.body_params:
        lean.body_field = None
    return lean
