"""Flower's SuperLink with each of its HTTP middlewares run only on the API it belongs to (and
called in place on the unary APIs, `inline_middleware.py`), waking who waits for what it stores.

    python -m fl_runtime.fast_link [--wake-nodes-as PREFIX] <flower-superlink arguments>

Why this is written by hand: flwr 1.42's SuperLink wraps every request (Fleet, Runtime and
Control API alike) in eight `BaseHTTPMiddleware` layers, and each layer costs an anyio task group
and two memory streams per request even when its `dispatch` only passes the request on. Six of
them act on one API alone and pass everything else through unchanged, by their own first line:
the four Control ones on paths under `/v1/control/`, node authentication and the Fleet event log
on paths under `/v1/fleet/`. Profiled in a deployment-mode job here, the SuperLink was the
busiest process (~2 CPU-seconds a round) and that time went to the middleware stack, not to the
handlers. `PathScoped` gives each such middleware only the requests it would act on and hands the
others straight to the next layer, so which middleware sees a request it acts on, and in which
order, is exactly Flower's; the error translator and the protobuf translation still see every
request. Tied to flwr 1.42 (pinned), as `control.py` and `fast_node.py` are.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from fl_runtime.inline_middleware import inlined

RUN_WAKE_PREFIX = "flp-run-"  # + run id: what the ServerApp's PromptGrid binds (flp_flower/prompt_grid.py)
CONTROL_PREFIX = "/v1/control/"
FLEET_PREFIX = "/v1/fleet/"


class PathScoped:
    """Pure ASGI: run `middleware` for HTTP requests under `prefix`, skip it for all others."""

    def __init__(self, app: ASGIApp, *, prefix: str, middleware: Middleware) -> None:
        self.app = app
        self.prefix = prefix
        self.scoped: ASGIApp = middleware.cls(app, *middleware.args, **middleware.kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
        else:
            await self.scoped(scope, receive, send)


def scoped_middleware(stack: Sequence[Middleware], prefixes: dict[type, str]) -> list[Middleware]:
    """`stack` in the same order, each middleware whose class is in `prefixes` scoped to its path,
    and each one's next app called in place on the unary APIs (`inline_middleware.inlined`)."""
    out = []
    for layer in stack:
        prefix = prefixes.get(layer.cls)  # type: ignore[call-overload]
        fast = inlined(layer)
        out.append(fast if prefix is None else Middleware(PathScoped, prefix=prefix, middleware=fast))
    return out


def flower_prefixes() -> dict[type, str]:
    """Flower 1.42's single-API middlewares and the path each one passes everything else by."""
    from flwr.superlink.routers.control.middlewares import (
        ControlAuthenticationMiddleware,
        ControlEventLogMiddleware,
        ControlLicenseMiddleware,
        ControlSensitiveResponseMiddleware,
    )
    from flwr.superlink.routers.fleet.middlewares import FleetEventLogMiddleware
    from flwr.superlink.routers.fleet.node_auth import NodeAuthMiddleware

    control: list[type] = [
        ControlSensitiveResponseMiddleware,
        ControlAuthenticationMiddleware,
        ControlLicenseMiddleware,
        ControlEventLogMiddleware,
    ]
    fleet: list[type] = [NodeAuthMiddleware, FleetEventLogMiddleware]
    return {**dict.fromkeys(control, CONTROL_PREFIX), **dict.fromkeys(fleet, FLEET_PREFIX)}


def install_scoped_middleware(main_module: Any) -> None:
    """Make `flwr.superlink.main.create_app` (passed in, for tests) build the scoped stack."""
    flower_stack = main_module._get_middleware
    prefixes = flower_prefixes()
    main_module._get_middleware = lambda: scoped_middleware(flower_stack(), prefixes)


def wake_on_store(state_cls: Any, node_prefix: str | None) -> None:
    """Make the SuperLink's state (`InMemoryLinkState`, passed in, for tests) wake who waits for
    what it just stored: the SuperNode a message is for (by `node_prefix` + its node id, the name
    the platform's SuperNodes listen on: `fast_node.node_wake_address`) and the run's ServerApp
    (`PromptGrid`, by its run id) when a node stored a reply. Both sides poll as before when
    nothing wakes them (remote SuperNodes, a lost datagram): this only spares them the empty polls
    in between, each a full HTTP request (~2-3 ms of SuperLink CPU)."""
    from fl_runtime.fast_node import node_wake_address, wake

    store_ins, store_res = state_cls.store_message_ins, state_cls.store_message_res

    def store_message_ins(self: Any, message: Any) -> Any:
        stored = store_ins(self, message)
        if stored is not None and node_prefix:
            wake(node_wake_address(node_prefix, message.metadata.dst_node_id))
        return stored

    def store_message_res(self: Any, message: Any) -> Any:
        stored = store_res(self, message)
        if stored is not None:
            wake(f"{RUN_WAKE_PREFIX}{message.metadata.run_id}")
        return stored

    state_cls.store_message_ins = store_message_ins
    state_cls.store_message_res = store_message_res


def main(argv: Sequence[str] | None = None) -> None:
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState
    from flwr.superlink import main as superlink_main
    from flwr.superlink.cli.flower_superlink import flower_superlink

    from fl_runtime import flower_deps
    from fl_runtime.fast_node import take_option

    args = list(sys.argv[1:] if argv is None else argv)
    node_prefix = take_option(args, "--wake-nodes-as")  # ours, not Flower's
    install_scoped_middleware(superlink_main)
    flower_deps.install(superlink_main)  # its cheap `def` dependencies without a thread hop
    wake_on_store(InMemoryLinkState, node_prefix)
    sys.argv = ["flower-superlink", *args]
    flower_superlink()


if __name__ == "__main__":
    main()
