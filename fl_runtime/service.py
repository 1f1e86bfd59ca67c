"""The Flower runtime as a platform background service: engine + job supervisor. The
composition root registers it; the platform starts it with the app and stops it (and every
Flower process) on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from commands.handlers import CommandHandler
from config.settings import Settings
from domain.commands import JobCommand
from domain.training_job import JobState
from fl_runtime.control import FlowerControl
from fl_runtime.engine import EngineConfig, FlowerEngine
from fl_runtime.supervisor import JobSupervisor, mark_lost_runs
from persistence.ports import EventStore, Ownership
from projections.ports import ReadModelStore


class FlowerRuntime:
    def __init__(
        self,
        settings: Settings,
        store: EventStore,
        jobs: CommandHandler[JobCommand, JobState],
        read_models: ReadModelStore,
        token_for: Callable[[str], str | None] | None = None,
    ) -> None:
        if settings.flower_mode == "off":
            raise ValueError("the Flower runtime is off (FLP_FLOWER_MODE=off)")
        self.settings = settings
        self.store = store
        self.jobs = jobs
        self.read_models = read_models
        self.engine = FlowerEngine(
            EngineConfig(
                mode=settings.flower_mode,
                data_dir=settings.data_dir,
                supernodes=settings.flower_supernodes,
                remote_superlink=settings.flower_superlink,
                host=settings.flower_host,
                port=settings.flower_port,
                secure=settings.flower_secured,
                ca_file=settings.flower_ca_file,
            )
        )
        self.token_for = token_for
        self.control: FlowerControl | None = None
        self.supervisor: JobSupervisor | None = None
        self._supervisor_task: asyncio.Task[None] | None = None
        self._restarting = False
        self._new_supervisor = asyncio.Event()
        self.started = asyncio.Event()
        self.ownership = Ownership()  # the runtime lease, when replicas share the store (flp.exclusive)

    @property
    def public_url(self) -> str:
        s = self.settings
        return s.public_url or f"http://{s.api_host}:{s.api_port}"

    async def run(self) -> None:
        """Start the engine (once), then run a supervisor; a restarted supervisor replaces it."""
        if not self.engine.control_address:
            await asyncio.to_thread(self.engine.start)
        if self.control is None:
            self.control = FlowerControl(self.engine.control_address, root_certificates=self.engine.ca_file)
            if self.engine.mode != "remote":
                await mark_lost_runs(self.control, self.engine)
        while True:
            self.supervisor = JobSupervisor(
                self.store,
                self.jobs,
                self.read_models,
                self.engine,
                self.control,
                self.public_url,
                self.settings.flower_reply_timeout_s,
                self.token_for,
                ownership=self.ownership,
            )
            self._supervisor_task = asyncio.create_task(self.supervisor.run(), name="flower-supervisor")
            self._restarting = False
            self._new_supervisor.set()
            self.started.set()
            try:
                await self._supervisor_task
                return
            except asyncio.CancelledError:
                if not self._restarting:
                    raise

    async def restart_supervisor(self) -> JobSupervisor:
        """Kill the supervisor (as a crash would) and wait for a fresh one to be ready."""
        assert self._supervisor_task is not None
        self._new_supervisor.clear()
        self._restarting = True
        self._supervisor_task.cancel()
        await self._new_supervisor.wait()
        assert self.supervisor is not None
        await self.supervisor.ready.wait()
        return self.supervisor

    async def stop(self) -> None:
        if self._supervisor_task is not None:
            self._supervisor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor_task
        if self.control is not None:
            self.control.close()
            self.control = None  # run() may start again (the runtime lease came back)
        await asyncio.to_thread(self.engine.stop)
        self.started.clear()

    def info(self) -> dict[str, Any]:
        return {
            "mode": self.engine.mode,
            "superlink": self.engine.control_address or None,
            "processes": len(self.engine.processes),
            "tracked_jobs": len(self.supervisor.tracked) if self.supervisor else 0,
        }
