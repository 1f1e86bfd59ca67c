"""A real platform (uvicorn on a free loopback port, built by flp.wiring) with a Flower engine."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from config.ports import free_port
from config.settings import Settings
from fl_runtime.processes import ManagedProcess
from fl_runtime.service import FlowerRuntime
from flp.server import RunningServer, running_server
from tests.auth.helpers import admin_headers

TERMINAL = {"completed", "failed", "cancelled"}


async def kill_and_await_restart(proc: ManagedProcess, timeout_s: float = 30.0) -> None:
    """SIGKILL an owned Flower process and wait until the engine's health check restarted it."""
    old_pid = proc.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    for _ in range(int(timeout_s / 0.2)):
        if proc.running() and proc.pid != old_pid:
            break
        await asyncio.sleep(0.2)
    assert proc.running() and proc.pid != old_pid


@dataclass
class Platform:
    server: RunningServer
    http: httpx.AsyncClient

    @property
    def runtime(self) -> FlowerRuntime:
        runtime = self.server.container.runtime
        assert runtime is not None
        return runtime

    async def start_job(self, **config: Any) -> str:
        body = {"name": "test", "runtime": "flower", "seed": 42, **config}
        response = await self.http.post("/jobs", json=body)
        assert response.status_code == 201, response.text
        job_id: str = response.json()["events"][0]["data"]["job_id"]
        return job_id

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await self.http.get(f"/jobs/{job_id}/events", params={"limit": 1000})).json()[
            "items"
        ]
        return items

    async def wait_for_event(self, job_id: str, event_type: str, timeout_s: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in await self.events(job_id):
                if event["type"] == event_type:
                    return event
            await asyncio.sleep(0.2)
        raise TimeoutError(f"no {event_type} for job {job_id}: {[e['type'] for e in await self.events(job_id)]}")

    async def wait_terminal(self, job_id: str, timeout_s: float = 150.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            doc: dict[str, Any] = (await self.http.get(f"/jobs/{job_id}")).json()
            if doc.get("status") in TERMINAL:
                return doc
            await asyncio.sleep(0.3)
        raise TimeoutError(f"job {job_id} did not finish: {[e['type'] for e in await self.events(job_id)]}")


@asynccontextmanager
async def serve_platform(
    data_dir: Path, mode: str, supernodes: int = 2, superlink: str | None = None, **more: Any
) -> AsyncIterator[Platform]:
    settings = Settings(
        data_dir=data_dir,
        flower_mode=mode,
        flower_supernodes=supernodes,
        flower_superlink=superlink,
        flower_reply_timeout_s=60.0,
        api_port=0,
        **more,
    )
    async with running_server(settings, port=free_port()) as server:
        headers = admin_headers(server.container.settings)  # the generated admin's token
        platform = Platform(server, httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30.0))
        async with platform.http:
            await asyncio.wait_for(platform.runtime.started.wait(), 90)
            assert platform.runtime.supervisor is not None
            await asyncio.wait_for(platform.runtime.supervisor.ready.wait(), 30)
            yield platform
            engine = platform.runtime.engine
    assert engine.owned_pids() == [], "Flower processes outlived the platform"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform on the simulation engine, shared by the module's tests."""
    async with serve_platform(tmp_path_factory.mktemp("flp-sim"), "simulation") as platform:
        yield platform


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform on the deployment engine (the demo's) with 3 SuperNodes, shared by the module's tests."""
    async with serve_platform(tmp_path_factory.mktemp("flp-dep"), "deployment", supernodes=3) as platform:
        yield platform
    # serve_platform asserts that no Flower process outlived the platform


@pytest.fixture
def flower_pull_defaults() -> Iterator[None]:
    """Flower's object-pull backoff as pinned, restored after a test that shortens it in-process."""
    from flwr.supercore.inflatable import inflatable_utils

    pulls = (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree)
    saved = [dict(fn.__kwdefaults__ or {}) for fn in pulls]
    yield
    for fn, defaults in zip(pulls, saved, strict=True):
        fn.__kwdefaults__ = defaults
