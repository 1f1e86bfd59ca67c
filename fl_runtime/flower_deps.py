"""Flower's request-only `def` dependencies run on the event loop instead of a worker thread.

Written by hand because FastAPI runs every `def` dependency in its thread pool, and flwr 1.42
declares its cheapest ones that way: the Runtime version check (request headers), the parsed
protobuf request (`request.state`), and the state, handlers and settings the app keeps (a cached
instance or an attribute of `app.state`). A Fleet or Runtime request took three to five thread hops
for them before its handler, each a queue put, a condition notify and a wake-up of the loop on two
cores shared by seven processes; profiled in a deployment-mode job, the hops were the SuperLink's
largest cost after its middlewares. Only the dependencies named in `ON_LOOP` move, and each keeps
its own code: a dependency that can block (a task-token lookup in the state, an account check,
SuperExec authentication) and every handler stay in the pool as Flower wrote them. Tied to flwr
1.42 and FastAPI 0.138 (pinned), as `fast_link.py` is; `tests/fl_runtime/test_flower_deps.py`
fails if a name here no longer exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

ON_LOOP = (  # module, name: each reads only the request, its headers or app.state
    ("flwr.supercore.dependencies.version", "VersionDependency"),
    ("flwr.supercore.protobuf.translation", "get_protobuf_request"),
    ("flwr.supercore.protobuf.streaming", "get_protobuf_stream_context"),
    ("flwr.supercore.dependencies.runtime", "get_runtime_state"),
    ("flwr.supercore.dependencies.runtime", "get_runtime_handlers"),
    ("flwr.superlink.dependencies.linkstate", "get_linkstate"),
    ("flwr.superlink.dependencies.fleet_api", "get_fleet_api_type"),
    ("flwr.superlink.routers.fleet.router", "get_enable_supernode_auth"),
)
CACHED = ("is_gen_callable", "is_async_gen_callable", "is_coroutine_callable", "cache_key")


def on_loop_targets() -> set[object]:
    """The functions and classes of `ON_LOOP` (a dependency instance counts by its class)."""
    return {getattr(importlib.import_module(module), name) for module, name in ON_LOOP}


def run_on_loop(app: FastAPI, targets: set[object] | None = None) -> int:
    """Make each dependency of `app`'s routes that is in `targets` a coroutine FastAPI awaits in
    place; returns how many dependency slots changed. Call it once the routes are all added."""
    targets = on_loop_targets() if targets is None else targets
    wrappers: dict[int, Callable[..., Any]] = {}  # one per callable: FastAPI caches per request by it
    changed = 0
    for dependant in _dependants(app):
        for sub in _walk(dependant):
            call = sub.call
            if call is None or sub.is_coroutine_callable or sub.is_gen_callable or sub.is_async_gen_callable:
                continue
            if call not in targets and type(call) not in targets:
                continue
            wrapper = wrappers.setdefault(id(call), _awaitable(call))
            sub.call = wrapper
            for name in CACHED:
                sub.__dict__.pop(name, None)
            changed += 1
    return changed


def _awaitable(call: Callable[..., Any]) -> Callable[..., Any]:
    async def on_loop(**values: Any) -> Any:
        return call(**values)

    return on_loop


def _dependants(app: FastAPI) -> Iterator[Dependant]:
    """Every route's dependency tree, also of routes under an included router (FastAPI 0.138
    resolves those through per-include contexts, each with its own dependency tree)."""
    from fastapi.routing import _IncludedRouter

    for route in app.router.routes:
        if isinstance(route, APIRoute):
            yield route.dependant
        elif isinstance(route, _IncludedRouter):
            for context in route.effective_route_contexts():
                if isinstance(context.original_route, APIRoute):
                    if context.dependant is not None:
                        yield context.dependant
                    yield context.original_route.dependant


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    stack = [dependant]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.dependencies)


def install(main_module: Any) -> None:
    """Make `main_module.create_app` (flwr's SuperLink or SuperNode app factory, passed in for
    tests) run the `ON_LOOP` dependencies on the loop in every app it builds."""
    build = main_module.create_app

    def create_app(*args: Any, **kwargs: Any) -> FastAPI:
        app: FastAPI = build(*args, **kwargs)
        run_on_loop(app)
        return app

    main_module.create_app = create_app
