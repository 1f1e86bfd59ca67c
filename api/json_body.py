"""A route's JSON body validated by its pydantic model in one step: pydantic-core parses and
validates the bytes at once (`model_validate_json`).

Written by hand because FastAPI 0.138 takes a model body through four steps on every request:
the content type parsed by `email.message`, the bytes decoded by the standard library's
`json.loads`, the body field solved by its generic parameter code, then the model validated from
the decoded objects. Under `POST /jobs` load those steps were ~9% of the event loop's samples.

Only the handler changes: the route keeps its declared body parameter, so OpenAPI documents it
as before. `FastBody.handler` builds FastAPI's handler from a copy of the route's dependant
without the body parameter, and the endpoint gets the model validated here. A body this path
does not take as it is (another content type, a body that does not validate, bytes that are not
strict JSON) goes to FastAPI's own handler, so every refusal is FastAPI's 422 (or 400), with all
its errors, exactly as before. Validation in JSON mode accepts what the decoded objects' Python
mode accepts for the models here (none declares strict fields: strict mode is where the two
differ), which `tests/api/test_json_body.py` checks against FastAPI's own path.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_BODY: ContextVar[BaseModel] = ContextVar("flp_json_body")


def _is_json(content_type: str | None) -> bool:
    """What FastAPI reads as JSON: application/json or application/*+json, any parameters."""
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@dataclasses.dataclass(frozen=True)
class FastBody:
    """The route's one body parameter: its name and its model."""

    name: str
    model: type[BaseModel]

    @classmethod
    def of(cls, route: APIRoute) -> FastBody | None:
        """The body of a route whose only body parameter is a model, taken whole (not embedded,
        not a form), at the endpoint's own level, with an `async def` endpoint; None otherwise."""
        dependant = route.dependant
        if len(dependant.body_params) != 1 or route._embed_body_fields:
            return None
        if route.body_field is None or route.body_field.name != dependant.body_params[0].name:
            return None  # a body parameter of a sub-dependency
        field = dependant.body_params[0]
        model = field.field_info.annotation
        if isinstance(field.field_info, params.Form) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if not inspect.iscoroutinefunction(dependant.call):
            return None
        return cls(field.name, model)

    def validate(self, body: bytes) -> BaseModel | None:
        """The model, or None when FastAPI's own path should answer (it has the errors)."""
        try:
            return self.model.model_validate_json(body)
        except ValidationError:
            return None

    def handler(self, route: APIRoute, build: Callable[[APIRoute], Handler]) -> Handler:
        """Fast path beside FastAPI's handler (`build(route)`), which takes what it refuses."""
        full = build(route)
        endpoint = route.dependant.call
        assert endpoint is not None
        name = self.name

        async def call(**values: Any) -> Any:
            values[name] = _BODY.get()
            return await endpoint(**values)

        lean = copy_route(route, dataclasses.replace(route.dependant, body_params=[], call=call))
        fast = build(lean)

        async def app(request: Request) -> Response:
            if not _is_json(request.headers.get("content-type")):
                return await full(request)
            value = self.validate(await request.body())
            if value is None:
                return await full(request)  # the same body, cached by the request: FastAPI's 422
            token = _BODY.set(value)
            try:
                return await fast(request)
            finally:
                _BODY.reset(token)

        return app


def copy_route(route: APIRoute, dependant: Any) -> APIRoute:
    """A shallow copy of `route` with another dependant and no body field (only to build a
    handler from: FastAPI's `get_route_handler` reads these attributes of the route)."""
    lean = object.__new__(type(route))
    lean.__dict__.update(route.__dict__)
    lean.dependant = dependant
    lean.body_field = None
    return lean
