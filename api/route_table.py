"""Put a router's routes on the app itself instead of `app.include_router`.

Written by hand because FastAPI 0.138 (the version flwr 1.42 pins) keeps an included router as a
lazily resolved branch: each request is matched against every router twice (once to choose, once
to handle), with the scope's route context swapped in and out for every candidate route, and the
chosen route's request handler is rebuilt on every call. With our 62 routes in 11 routers that
was ~20% of the event loop on `GET /health` (py-spy, `wrk -c32`). A route registered on the app's
own router is built once and matched once, as in FastAPI before 0.130, whose `include_router`
did what `add_routes` does: register each route again with the app's dependencies, tags,
responses and callbacks joined to its own. `tests/api/test_route_table.py` checks the OpenAPI
document and the dependencies come out the same as with `include_router`.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match, Route, Router, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send


def add_routes(app: FastAPI, router: APIRouter, route_class: type[APIRoute] = APIRoute) -> None:
    """Register every route of `router` (its prefix, tags and dependencies already in each route)
    on `app`'s own router as `route_class` (the app's own dependencies run first)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r}: only API routes can be added to the app's table")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=list(route.tags),
            dependencies=list(route.dependencies),
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=dict(route.responses),
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            route_class_override=route_class,
            callbacks=list(route.callbacks or []),
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            strict_content_type=route.strict_content_type,
        )


class RouteIndex:
    """Match an HTTP request only against the routes that can match it, in the router's order.

    Written by hand because Starlette's router tries every route in turn (a regex and, for a
    FastAPI route, a scope-context lookup each), and the dashboard, docs and API routes make 66 of
    them: `GET /jobs/{id}` was matched 14 times a request, `GET /health` 40-odd times. A route
    whose first path segment is literal (`/jobs/...`) can only match paths with that first
    segment, and one with methods only requests with one of them; so the candidates for a
    (method, first segment) are computed once, in the router's order, and the first FULL match
    among them is the one the full scan finds first. Anything else (no FULL match: a 404, a 405, a
    slash redirect, a mount, a websocket) goes to the router itself unchanged.
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.fallback: ASGIApp = router.middleware_stack
        self._indexed: tuple[int, int] = (-1, 0)  # (count, id of the last route) it was built for
        self._buckets: dict[tuple[str, str], list[BaseRoute]] = {}
        self._anywhere: dict[str, list[BaseRoute]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            routes = self.router.routes
            if (len(routes), id(routes[-1]) if routes else 0) != self._indexed:  # routes added or replaced
                self._build(routes)
            method, segment = scope["method"], _first_segment(get_route_path(scope))
            candidates = self._buckets.get((method, segment))
            if candidates is None:
                candidates = self._anywhere.get(method, [])
            for route in candidates:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:  # as Router.app does on a full match
                    scope.setdefault("router", self.router)
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.fallback(scope, receive, send)

    def _build(self, routes: list[BaseRoute]) -> None:
        methods = {m for r in routes if isinstance(r, Route) and r.methods for m in r.methods}
        segments = {s for r in routes if isinstance(r, Route) and (s := _literal_segment(r.path)) is not None}
        self._buckets = {(m, s): [r for r in routes if _may_match(r, m, s)] for m in methods for s in segments}
        self._anywhere = {m: [r for r in routes if _may_match(r, m, None)] for m in methods}
        self._indexed = (len(routes), id(routes[-1]) if routes else 0)


def index_routes(app: FastAPI) -> None:
    """Put a `RouteIndex` in front of `app`'s router (call it once every route is added; the
    index is rebuilt when routes are added later, or the last one replaced)."""
    if app.router.middleware_stack != app.router.app:
        raise TypeError("the router has middleware of its own, which the index would bypass")
    app.router.middleware_stack = RouteIndex(app.router)


def _first_segment(path: str) -> str:
    return path[1:].split("/", 1)[0]


def _literal_segment(route_path: str) -> str | None:
    """The first segment of a route's path, or None if a parameter is in it."""
    segment = _first_segment(route_path)
    return None if "{" in segment else segment


def _may_match(route: BaseRoute, method: str, segment: str | None) -> bool:
    """Whether `route` could FULL-match an HTTP `method` request whose path's first segment is
    `segment` (None: one no route names literally)."""
    if isinstance(route, WebSocketRoute):
        return False
    if not isinstance(route, Route):
        return True  # a mount, a host...: let it decide
    if route.methods is not None and method not in route.methods:
        return False
    literal = _literal_segment(route.path)
    return literal is None or literal == segment
