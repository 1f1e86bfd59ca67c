"""Crash drill: a real `flp serve` process under a bounded concurrent load (every command with an
idempotency key, retried after a failure) is killed with SIGKILL at random moments, several times,
and restarted. Afterwards every acknowledged command's events are present exactly once, the
positions are gap-free, `flp audit verify` is clean with no operator step, and every read model
equals a rebuild from the log."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from config.settings import Settings
from tests.auth.helpers import admin_headers
from tests.live_server import rebuilt_and_live
from tests.serve_process import FLP, ServeProcess

CLIENTS = 8
JOBS_PER_CLIENT = 6
KILLS = 3


def plan(client: int) -> list[tuple[str, dict[str, Any], str]]:
    """Each client's commands in order: (path, body, idempotency key)."""
    steps: list[tuple[str, dict[str, Any], str]] = []
    for n in range(JOBS_PER_CLIENT):
        job = f"c{client}-{n}"
        steps.append(("/jobs", {"job_id": job, "name": job, "rounds": 2, "min_clients": 1, "runtime": "external"}, ""))
        for rnd in (1, 2):
            results = [{"client_id": c, "num_examples": 10 * rnd, "metrics": {"loss": 1 / rnd}} for c in "ab"]
            steps.append((f"/jobs/{job}/rounds", {"round": rnd, "results": results}, ""))
        steps.append((f"/jobs/{job}/complete", {"final_metrics": {"accuracy": 0.9}}, ""))
    return [(path, body, f"{client}-{i}") for i, (path, body, _) in enumerate(steps)]


async def run_client(server: ServeProcess, headers: dict[str, str], client: int, acked: dict[str, list[Any]]) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as http:
        for path, body, key in plan(client):
            while True:
                await server.up.wait()
                try:
                    r = await http.post(path, json=body, headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    await asyncio.sleep(0.05)  # killed under us: retry the same request, same key
                    continue
                assert r.status_code in (200, 201), (path, r.status_code, r.text)
                acked.setdefault(key, []).append(r.json()["events"])
                break


async def test_sigkill_under_load_loses_nothing_and_needs_no_repair(tmp_path: Path) -> None:
    data_dir = tmp_path / "flp"
    server = ServeProcess(data_dir)
    await server.start()
    headers = admin_headers(Settings(data_dir=data_dir))
    acked: dict[str, list[Any]] = {}
    rng = random.Random(20261201)
    load = asyncio.gather(*(run_client(server, headers, c, acked) for c in range(CLIENTS)))
    try:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            await server.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.2))
            await server.start()
        await asyncio.wait_for(load, timeout=120)
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as http:
            report = (await http.get("/audit/verify")).json()  # the restarted server, no operator step
            assert report["ok"] and report["sealed_checked"], report
            assert (await http.get("/health")).json()["status"] == "ok"
    finally:
        load.cancel()
        await server.stop()

    # every acknowledged command's events present exactly once; retries got the original answer
    assert len(acked) == CLIENTS * JOBS_PER_CLIENT * 4
    for key, answers in acked.items():
        assert all(a == answers[0] for a in answers), key
        assert answers[0], key  # every command here appends
    verify = await asyncio.to_thread(
        subprocess.run, [*FLP, "audit", "verify", "--json"], env=server.env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"]
    with sqlite3.connect(data_dir / "flp.db") as db:
        rows = db.execute("SELECT position, event_id FROM events ORDER BY position").fetchall()
    assert [p for p, _ in rows] == list(range(1, len(rows) + 1))  # gap-free
    stored = Counter(event_id for _, event_id in rows)
    acknowledged = [e["event_id"] for answers in acked.values() for e in answers[0]]
    assert all(stored[i] == 1 for i in acknowledged)
    assert len(rows) == len(acknowledged)  # and nothing else: no command was applied twice
    rebuilt, live = await rebuilt_and_live(data_dir, tmp_path / "rebuilt.db")
    assert rebuilt == live
