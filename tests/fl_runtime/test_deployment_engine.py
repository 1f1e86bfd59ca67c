"""The deployment engine (a real SuperLink, its ServerApp launcher and 2 SuperNodes with their
ClientApp executors as processes on loopback), and the supervisor's run lifecycle on it.

The lifecycle tests (a job failing below min_clients, cancel, a supervisor restart, adopting a run
submitted before a crash) go through the Control API only, the same on both engines; they run
here because a deployment job takes seconds once the processes are up, where every simulation
run starts its own Ray cluster (~20-40 s each). The simulation engine's own behaviour stays in
test_simulation_jobs.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psutil
import pytest
import pytest_asyncio

from domain.events import JobConfig
from fl_runtime.engine import OWNED_NODE_HEARTBEAT_S
from fl_runtime.processes import owned_pids
from fl_runtime.run_config import run_config_for
from tests.fl_runtime.conftest import Platform, kill_and_await_restart, serve_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dep_platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform on the deployment engine with 2 SuperNodes, shared by the module's tests."""
    async with serve_platform(tmp_path_factory.mktemp("flp-dep"), "deployment", supernodes=2) as platform:
        yield platform
    # serve_platform asserts that no Flower process outlived the platform


async def test_deployment_engine_runs_a_job_on_real_supernodes(dep_platform: Platform) -> None:
    platform = dep_platform
    engine = platform.runtime.engine
    names = [p.name for p in engine.processes]
    assert names == ["superlink", "zygote", "serverapps", "supernode-0", "clientapps-0", "supernode-1", "clientapps-1"]
    assert all(p.running() for p in engine.processes)
    assert not engine.control_address.endswith(":8000")
    job_id = await platform.start_job(rounds=1, num_clients=2, min_clients=2)
    detail = await platform.wait_terminal(job_id, timeout_s=150)
    events = await platform.events(job_id)
    assert detail["status"] == "completed", [e["type"] for e in events]
    round_1 = next(e["data"] for e in events if e["type"] == "RoundCompleted")
    assert (round_1["sampled"], round_1["replied"], round_1["failed"]) == (2, 2, 0)
    assert round_1["central_metrics"]["central_acc"] > 0.1
    home = platform.server.container.settings.data_dir / "flower" / "home"
    assert home.is_dir()  # isolated FLWR_HOME under the data dir
    # the owned SuperNodes heartbeat every OWNED_NODE_HEARTBEAT_S (Flower's default is 30 s), so
    # a killed one goes offline at the SuperLink within 2 of them
    control = platform.runtime.control
    assert control is not None
    online = [n for n in await asyncio.to_thread(control.list_nodes) if n.status == "online"]
    assert [n.heartbeat_interval for n in online] == [OWNED_NODE_HEARTBEAT_S] * 2

    # health check: the zygote, the ServerApp launcher, a SuperNode or its ClientApp executor
    # that dies is started again (the zygote's children stay up without it), and the next job
    # runs on them
    by_name = {p.name: p for p in engine.processes}
    forked = {name: p.pid for name, p in by_name.items() if name not in ("superlink", "zygote")}
    await kill_and_await_restart(by_name["zygote"], timeout_s=20)
    assert {name: by_name[name].pid for name in forked} == forked
    assert [p.name for p in engine.processes if not p.running()] == []
    for node in (by_name["serverapps"], by_name["supernode-1"], by_name["clientapps-1"]):
        await kill_and_await_restart(node, timeout_s=30)
        assert psutil.Process(node.pid).ppid() == by_name["zygote"].pid  # forked by the new zygote
    job_id = await platform.start_job(rounds=2, num_clients=2, min_clients=2)
    detail = await platform.wait_terminal(job_id, timeout_s=150)
    assert detail["status"] == "completed"
    rounds = [e["data"] for e in await platform.events(job_id) if e["type"] == "RoundCompleted"]
    assert [(r["round"], r["replied"]) for r in rounds] == [(1, 2), (2, 2)]

    # a ClientApp that raises gets Flower's Error reply from its long-lived process, which
    # stays up and takes that node's next task (the failure comes back in round 2 as well)
    executors = {p.name: p.pid for p in engine.processes if p.name.startswith("clientapps-")}
    job_id = await platform.start_job(rounds=2, num_clients=2, min_clients=1, hyperparameters={"fail_partitions": "1"})
    detail = await platform.wait_terminal(job_id, timeout_s=150)
    events = await platform.events(job_id)
    assert detail["status"] == "completed", (detail.get("reason"), [e["type"] for e in events])
    rounds = [e["data"] for e in events if e["type"] == "RoundCompleted"]
    assert [(r["round"], r["replied"], r["failed"]) for r in rounds] == [(1, 1, 1), (2, 1, 1)]
    failed = [e["data"] for e in events if e["type"] == "ClientFailed"]
    assert [(f["round"], f["code"]) for f in failed] == [(1, "CLIENT_APP_RAISED_EXCEPTION")] * 1 + [
        (2, "CLIENT_APP_RAISED_EXCEPTION")
    ]
    assert all("injected failure on partition 1" in f["reason"] for f in failed)
    assert {p.name: p.pid for p in engine.processes if p.name.startswith("clientapps-")} == executors


async def test_failing_client_below_min_clients_fails_the_job(dep_platform: Platform) -> None:
    job_id = await dep_platform.start_job(
        rounds=2, num_clients=2, min_clients=2, hyperparameters={"fail_partitions": "0"}
    )
    detail = await dep_platform.wait_terminal(job_id)
    types = [e["type"] for e in await dep_platform.events(job_id)]
    assert detail["status"] == "failed", types
    assert "RoundCompleted" not in types and types[-1] == "JobFailed"
    assert "min_clients=2" in detail["reason"] and "injected failure on partition 0" in detail["reason"]
    failed = [e["data"] for e in await dep_platform.events(job_id) if e["type"] == "ClientFailed"]
    assert len(failed) == 1 and failed[0]["round"] == 1
    assert (
        failed[0]["code"] == "CLIENT_APP_RAISED_EXCEPTION" and "injected failure on partition 0" in failed[0]["reason"]
    )
    assert types[-2:] == ["ClientFailed", "JobFailed"]


async def test_cancel_mid_run_stops_the_flower_run(dep_platform: Platform) -> None:
    engine = dep_platform.runtime.engine
    idle = set(engine.owned_pids())
    job_id = await dep_platform.start_job(rounds=50, num_clients=2, min_clients=2)
    await dep_platform.wait_for_event(job_id, "RoundCompleted")
    run_id = (await dep_platform.wait_for_event(job_id, "JobStarted"))["data"]["run_id"]
    assert set(engine.owned_pids()) - idle, "a running job has Flower processes"

    response = await dep_platform.http.post(f"/jobs/{job_id}/cancel", json={"reason": "test cancel"})
    assert response.status_code == 200, response.text
    control = dep_platform.runtime.control
    assert control is not None
    for _ in range(150):
        run = (await asyncio.to_thread(control.list_runs))[run_id]
        if run.finished and not set(engine.owned_pids()) - idle:
            break
        await asyncio.sleep(0.2)
    assert run.status == "finished:stopped"
    assert set(engine.owned_pids()) - idle == set(), "Flower processes left behind after cancel"
    events = await dep_platform.events(job_id)
    assert events[-1]["type"] == "JobCancelled"
    rounds = [e for e in events if e["type"] == "RoundCompleted"]
    assert 1 <= len(rounds) < 50
    assert owned_pids("no-such-owner") == []


async def test_supervisor_restart_mid_job_keeps_exactly_one_run(dep_platform: Platform) -> None:
    job_id = await dep_platform.start_job(rounds=3, num_clients=2, min_clients=2)
    await dep_platform.wait_for_event(job_id, "JobStarted")
    fresh = await dep_platform.runtime.restart_supervisor()
    assert job_id in fresh.tracked and fresh.tracked[job_id].status == "running"
    assert fresh.restored_from > 0, "the fresh supervisor starts from the checkpoint, not from 0"
    detail = await dep_platform.wait_terminal(job_id)
    assert detail["status"] == "completed"
    control = dep_platform.runtime.control
    assert control is not None
    runs = [r for r in (await asyncio.to_thread(control.list_runs)).values() if r.job_id == job_id]
    assert len(runs) == 1
    types = [e["type"] for e in await dep_platform.events(job_id)]
    assert types.count("JobStarted") == 1 and types.count("JobCompleted") == 1
    assert types.count("RoundCompleted") == 3


async def test_a_run_submitted_before_a_crash_is_adopted_not_duplicated(dep_platform: Platform) -> None:
    """The supervisor crashed after submitting a run but before recording JobStarted: the run
    exists on the SuperLink under the job's id, so the job adopts it instead of starting another."""
    runtime = dep_platform.runtime
    control = runtime.control
    assert control is not None and runtime.token_for is not None
    job_id = "adopt-me-1"
    config = JobConfig(name="adopt", rounds=1, num_clients=2, min_clients=2)
    run_config = run_config_for(job_id, config, runtime.public_url, 60.0, runtime.token_for(job_id))
    run_id = await asyncio.to_thread(control.start_run, run_config, runtime.engine.simulation_config(2))

    created = await dep_platform.http.post(
        "/jobs", json={"job_id": job_id, **config.model_dump(mode="json"), "runtime": "flower"}
    )
    assert created.status_code == 201, created.text
    detail = await dep_platform.wait_terminal(job_id)
    assert detail["status"] == "completed"
    started = [e for e in await dep_platform.events(job_id) if e["type"] == "JobStarted"]
    assert [e["data"]["run_id"] for e in started] == [run_id]
    runs = [r for r in (await asyncio.to_thread(control.list_runs)).values() if r.job_id == job_id]
    assert [r.run_id for r in runs] == [run_id]
