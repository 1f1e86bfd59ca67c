"""The remote engine: the platform drives an existing SuperLink it does not own."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fl_runtime.engine import EngineConfig, FlowerEngine
from tests.fl_runtime.conftest import serve_platform


async def test_remote_engine_uses_an_existing_superlink_and_starts_nothing(tmp_path: Path) -> None:
    external = FlowerEngine(EngineConfig(mode="simulation", data_dir=tmp_path / "external"))
    await asyncio.to_thread(external.start)  # stands in for a SuperLink run by someone else
    try:
        async with serve_platform(tmp_path / "flp-remote", "remote", superlink=external.control_address) as platform:
            assert platform.runtime.engine.processes == []
            assert platform.runtime.engine.control_address == external.control_address
            # the remote SuperLink's own simulation settings apply (Flower's default: 2 nodes)
            job_id = await platform.start_job(rounds=1, num_clients=2, min_clients=2)
            detail = await platform.wait_terminal(job_id)
            assert detail["status"] == "completed", detail
        assert all(p.running() for p in external.processes), "the platform must not stop what it does not own"
    finally:
        await asyncio.to_thread(external.stop)
