"""The deployment engine: a real SuperLink plus 2 SuperNodes as processes on loopback."""

from __future__ import annotations

from pathlib import Path

from tests.fl_runtime.conftest import kill_and_await_restart, serve_platform


async def test_deployment_engine_runs_a_job_on_real_supernodes(tmp_path: Path) -> None:
    async with serve_platform(tmp_path / "flp-dep", "deployment", supernodes=2) as platform:
        engine = platform.runtime.engine
        names = [p.name for p in engine.processes]
        assert names == ["superlink", "serverapps", "supernode-0", "clientapps-0", "supernode-1", "clientapps-1"]
        assert all(p.running() for p in engine.processes)
        assert not engine.control_address.endswith(":8000")
        job_id = await platform.start_job(rounds=1, num_clients=2, min_clients=2)
        detail = await platform.wait_terminal(job_id, timeout_s=150)
        events = await platform.events(job_id)
        assert detail["status"] == "completed", [e["type"] for e in events]
        round_1 = next(e["data"] for e in events if e["type"] == "RoundCompleted")
        assert (round_1["sampled"], round_1["replied"], round_1["failed"]) == (2, 2, 0)
        assert round_1["central_metrics"]["central_acc"] > 0.1
        home = tmp_path / "flp-dep" / "flower" / "home"
        assert home.is_dir()  # isolated FLWR_HOME under the data dir

        # health check: the ServerApp launcher, a SuperNode or its ClientApp executor that dies is
        # started again, and the next job runs on them
        by_name = {p.name: p for p in engine.processes}
        for node in (by_name["serverapps"], by_name["supernode-1"], by_name["clientapps-1"]):
            await kill_and_await_restart(node, timeout_s=20)
        job_id = await platform.start_job(rounds=2, num_clients=2, min_clients=2)
        detail = await platform.wait_terminal(job_id, timeout_s=150)
        assert detail["status"] == "completed"
        rounds = [e["data"] for e in await platform.events(job_id) if e["type"] == "RoundCompleted"]
        assert [(r["round"], r["replied"]) for r in rounds] == [(1, 2), (2, 2)]

        # a ClientApp that raises gets Flower's Error reply from its long-lived process, which
        # stays up and takes that node's next task (the failure comes back in round 2 as well)
        executors = {p.name: p.pid for p in engine.processes if p.name.startswith("clientapps-")}
        job_id = await platform.start_job(
            rounds=2, num_clients=2, min_clients=1, hyperparameters={"fail_partitions": "1"}
        )
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
    # serve_platform asserts that no Flower process outlived the platform
