"""What every `flp` command shares: settings, running a coroutine, errors as messages + exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from config.settings import Settings
from flp.cli.api_client import ApiError, FlpClient, Unreachable, connect
from flp.cli.output import err_console

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def load_settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # invalid FLP_ variables
        err_console.print(f"[red]invalid configuration:[/red] {exc}")
        raise typer.Exit(2) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; API refusals and unreachable servers become a message and an exit code."""
    try:
        return asyncio.run(coro)
    except ApiError as exc:
        err_console.print(f"[red]error {exc.status}:[/red] {exc.problem.get('detail') or exc.problem.get('title')}")
        raise typer.Exit(1) from None
    except Unreachable as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def with_client(fn: Callable[[FlpClient], Awaitable[T]]) -> T:
    """Call `fn` with a client of the platform (FLP_API_URL, or the data dir in-process)."""

    async def go() -> T:
        async with connect(load_settings()) as client:
            return await fn(client)

    return run(go())
