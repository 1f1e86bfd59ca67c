"""In-process helpers: start a Flower job and await its end, with a callback per round."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from commands.handlers import CommandContext, CommandHandler
from domain import events as e
from domain.commands import JobCommand, StartJob
from domain.training_job import JobState, stream_id
from persistence.ports import EventStore

RoundCallback = Callable[[e.RoundCompleted], Awaitable[None] | None]
TerminalEvent = e.JobCompleted | e.JobFailed | e.JobCancelled


async def await_job(
    store: EventStore,
    job_id: str,
    on_round: RoundCallback | None = None,
    *,
    after_position: int = 0,
    timeout_s: float = 600.0,
) -> TerminalEvent:
    """Follow the global feed from `after_position` until the job ends; `on_round` sees every
    `RoundCompleted` of the job (in order). Returns the terminal event."""
    wanted = stream_id(job_id)
    async with asyncio.timeout(timeout_s):
        async for batch in store.subscribe(after_position):
            for recorded in batch:
                if recorded.stream_id != wanted:
                    continue
                event = recorded.to_event()
                if isinstance(event, e.RoundCompleted) and on_round is not None:
                    maybe = on_round(event)
                    if inspect.isawaitable(maybe):
                        await maybe
                elif isinstance(event, e.JobCompleted | e.JobFailed | e.JobCancelled):
                    return event
    raise RuntimeError("the event feed ended")  # pragma: no cover


async def run_flower_job(
    store: EventStore,
    jobs: CommandHandler[JobCommand, JobState],
    job_id: str,
    config: e.JobConfig,
    on_round: RoundCallback | None = None,
    *,
    actor: str = "cli",
    timeout_s: float = 600.0,
) -> TerminalEvent:
    """Create a job (runtime "flower": the supervisor submits it) and await its end.

    Usage: `await run_flower_job(c.store, c.jobs, "demo-1", JobConfig(...), print)` with a
    container `c` whose Flower runtime is on (FLP_FLOWER_MODE != off).
    """
    if config.runtime != "flower":
        raise ValueError("run_flower_job needs a job with runtime='flower'")
    start = await store.head_position()
    await jobs.execute(job_id, StartJob(job_id=job_id, config=config), CommandContext(actor=actor))
    return await await_job(store, job_id, on_round, after_position=start, timeout_s=timeout_s)
