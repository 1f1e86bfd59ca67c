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
