"""A platform restart mid-job: the owned SuperLink comes back with its state, the run does not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fl_runtime.conftest import serve_platform


async def test_platform_restart_mid_job_fails_the_lost_run_and_starts_no_other(tmp_path: Path) -> None:
    data_dir = tmp_path / "flp"
    async with serve_platform(data_dir, "simulation") as platform:
        job_id = await platform.start_job(rounds=50, num_clients=2, min_clients=2)
        await platform.wait_for_event(job_id, "RoundCompleted")
        run_id = (await platform.wait_for_event(job_id, "JobStarted"))["data"]["run_id"]
    # down: serve_platform checked that no Flower process outlived it
    async with serve_platform(data_dir, "simulation") as platform:
        detail = await platform.wait_terminal(job_id, timeout_s=30)
        assert detail["status"] == "failed", detail
        assert run_id in detail["reason"] and "lost" in detail["reason"]
        control = platform.runtime.control
        assert control is not None
        runs = [r for r in (await asyncio.to_thread(control.list_runs)).values() if r.job_id == job_id]
        assert [r.run_id for r in runs] == [run_id] and runs[0].finished
        types = [e["type"] for e in await platform.events(job_id)]
        assert types.count("JobStarted") == 1 and types[-1] == "JobFailed"
