"""Serving the platform: uvicorn around the app, in the foreground or as a task (demo, tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn
import uvloop

from api.app import create_app
from config.ports import free_port, port_is_free
from config.settings import Settings
from flp.wiring import Container, build_container

T = TypeVar("T")


@dataclass
class RunningServer:
    url: str
    container: Container
    server: uvicorn.Server


async def serve_forever(settings: Settings, *, sockets: list[socket.socket] | None = None) -> None:
    """`sockets`: already listening (one of `flp serve --workers N`, see flp.workers)."""
    container = await build_container(settings)
    config = uvicorn.Config(
        create_app(container),
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=settings.access_log,
        lifespan="on",
    )
    await uvicorn.Server(config).serve(sockets=sockets)


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop (installed with uvicorn[standard]): uvicorn only picks it when it creates
    the loop itself, and here the loop exists before uvicorn does."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


@asynccontextmanager
async def running_server(settings: Settings, *, port: int | None = None) -> AsyncIterator[RunningServer]:
    """Start the platform on a port (a free one if the configured port is taken) and stop it after."""
    host = settings.api_host
    configured = settings.api_port
    chosen = port or (configured if configured and port_is_free(host, configured) else free_port(host))
    url = f"http://{host}:{chosen}"
    if settings.public_url is None:
        settings = settings.model_copy(update={"public_url": url})
    container = await build_container(settings)
    config = uvicorn.Config(
        create_app(container),
        host=host,
        port=chosen,
        log_level="warning",
        access_log=settings.access_log,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the API server stopped during start-up")
            await asyncio.sleep(0.02)
        yield RunningServer(url, container, server)
    finally:
        server.should_exit = True
        await task
