"""FL overhead benchmark: the demo job as bare Flower vs through the platform, same engine.

    python bench/fl_overhead.py [--mode simulation|deployment|both] [--rounds 5] [--clients 3]

Starts the platform (API + Flower engine) on a temporary data dir, then runs the same job twice
on its SuperLink: once bare (`flwr run` of flp's Flower app, timed until the run is finished),
once through the platform (`POST /jobs` until `JobCompleted`), with the seconds each round took
(`RoundCompleted.duration_s`). `--mode both` measures the simulation and the deployment engine
one after the other in the same run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.auth.principal import Role
from api.auth.tokens import issue_token
from config.settings import Settings
from fl_runtime.app_dir import APP_DIR
from fl_runtime.engine import CLI_CONNECTION, flower_env
from fl_runtime.service import FlowerRuntime
from flp.server import running_server

TERMINAL = {"completed", "failed", "cancelled"}


def bare_flwr_run(runtime: FlowerRuntime, rounds: int, clients: int, seed: int) -> dict[str, Any]:
    """`flwr run` against the platform's SuperLink; wall time until the run is finished."""
    engine = runtime.engine
    env = flower_env(engine.root / "home")
    run_config = f"num-server-rounds={rounds} num-clients={clients} min-clients={clients} seed={seed}"
    argv = [str(Path(sys.executable).parent / "flwr"), "run", str(APP_DIR), CLI_CONNECTION, "--format", "json"]
    argv += ["-c", run_config]
    if engine.mode == "simulation":
        cpus = os.cpu_count() or 1
        argv += [
            "--federation-config",
            f"num-supernodes={clients} client-resources-num-cpus=1 init-args-num-cpus={cpus} "
            "init-args-logging-level='ERROR' init-args-log-to-driver=false",
        ]
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=120)
    run_id = str(json.loads(out.stdout)["run-id"])
    assert runtime.control is not None
    while True:  # poll like `flwr ls`, but in-process so the poller does not compete for the CPU
        run = runtime.control.list_runs()[run_id]
        if run.finished:
            break
        time.sleep(0.2)
    return {"wall_s": time.perf_counter() - started, "status": run.status, "run_id": run_id}


async def through_platform(http: httpx.AsyncClient, job: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    response = (await http.post("/jobs", json=job)).raise_for_status()
    job_id = response.json()["events"][0]["data"]["job_id"]
    while True:
        doc = (await http.get(f"/jobs/{job_id}")).json()
        if doc["status"] in TERMINAL:
            break
        await asyncio.sleep(0.1)
    wall = time.perf_counter() - started
    history = (await http.get(f"/jobs/{job_id}/events")).json()["items"]
    round_s = [float(e["data"]["duration_s"]) for e in history if e["type"] == "RoundCompleted"]
    return {
        "wall_s": wall,
        "status": doc["status"],
        "job_id": job_id,
        "metrics": doc.get("final_metrics", {}),
        "round_s": round_s,
    }


async def settle(runtime: FlowerRuntime, idle: set[int], timeout_s: float = 30.0) -> None:
    """Wait until the previous run's processes are gone (Ray agents reaped), so runs start equal."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runtime.engine.reap_orphans()
        if not set(runtime.engine.owned_pids()) - idle:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)


async def measure(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="flp-bench-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            flower_mode=mode,
            flower_supernodes=args.clients,
            api_port=0,
        )
        async with running_server(settings) as server:
            runtime = server.container.runtime
            assert runtime is not None
            await asyncio.wait_for(runtime.started.wait(), 120)
            assert runtime.supervisor is not None
            await runtime.supervisor.ready.wait()
            token = issue_token(server.container.settings, "bench", [Role.ADMIN], kind="service")
            headers = {"Authorization": f"Bearer {token}"}
            job = {
                "name": "bench",
                "runtime": "flower",
                "strategy": "fedavg",
                "rounds": args.rounds,
                "num_clients": args.clients,
                "min_clients": args.clients,
                "seed": args.seed,
            }
            idle = set(runtime.engine.owned_pids())
            bares, platforms = [], []
            async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60.0) as http:
                for _ in range(args.repeat):
                    bares.append(await asyncio.to_thread(bare_flwr_run, runtime, args.rounds, args.clients, args.seed))
                    await settle(runtime, idle)
                    platforms.append(await through_platform(http, job))
                    await settle(runtime, idle)
            bare = min(bares, key=lambda r: float(r["wall_s"]))
            platform = min(platforms, key=lambda r: float(r["wall_s"]))
    rounds = sorted(platform["round_s"])
    return {
        "engine": mode,
        "bare_flwr_run_s": round(bare["wall_s"], 3),
        "platform_s": round(platform["wall_s"], 3),
        "ratio": round(platform["wall_s"] / bare["wall_s"], 3),
        "round_s_median": round(rounds[len(rounds) // 2], 3) if rounds else None,
        "round_s": [round(r, 3) for r in platform["round_s"]],
        "bare_status": bare["status"],
        "platform_status": platform["status"],
        "central_acc": platform["metrics"].get("central_acc"),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["simulation", "deployment", "both"], default="simulation")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="pairs of runs; the best of each side is reported")
    args = parser.parse_args()
    modes = ["simulation", "deployment"] if args.mode == "both" else [args.mode]
    result: dict[str, Any] = {
        "bench": "fl_overhead",
        "rounds": args.rounds,
        "clients": args.clients,
        "repeat": args.repeat,
    }
    runs = [await measure(mode, args) for mode in modes]
    if len(runs) == 1:
        result.update(runs[0])
    else:
        result["engines"] = {r["engine"]: r for r in runs}
        result["deployment_vs_simulation_job"] = round(runs[1]["platform_s"] / runs[0]["platform_s"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
