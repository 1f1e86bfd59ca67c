"""`flp serve --workers 2`: two real worker processes on one port and one data dir. Both answer,
a command answered by either is readable at once from the same connection's worker (the
projections run on one of them: the other waits for its commit notice), a worker killed with
SIGKILL is replaced, and SIGTERM stops them all."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from asyncio.subprocess import PIPE
from pathlib import Path

import httpx

from config.settings import Settings
from tests.auth.helpers import admin_headers
from tests.serve_process import FLP, ServeProcess


async def _replicas_answering(url: str, want: int, tries: int = 200) -> set[str]:
    """The replicas seen over new connections (the kernel spreads them over the workers)."""
    seen: set[str] = set()
    for _ in range(tries):
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            try:
                seen.add((await http.get("/health")).json()["replica"])
            except httpx.TransportError:
                await asyncio.sleep(0.1)  # a worker starting again
        if len(seen) >= want:
            break
    return seen


async def test_two_workers_share_the_port_and_each_reads_its_own_writes(tmp_path: Path) -> None:
    node = ServeProcess(tmp_path / "data", "workers")
    node.log.parent.mkdir(parents=True, exist_ok=True)
    with node.log.open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            *FLP, "serve", "--workers", "2", env=node.env, stdout=log, stderr=log
        )
    try:
        async with asyncio.timeout(120):
            first = await _replicas_answering(node.url, 2)
        assert len(first) == 2, node.log.read_text()[-3000:]
        headers = admin_headers(Settings(data_dir=tmp_path / "data"))
        answered: set[str] = set()
        for i in range(20):
            job = f"w-{i}-{uuid.uuid4().hex[:6]}"
            async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=10) as http:
                created = await http.post("/jobs", json={"job_id": job, "name": job, "rounds": 1, "min_clients": 1})
                assert created.status_code == 201, created.text
                read = await http.get(f"/jobs/{job}")
                assert read.status_code == 200, read.text
                assert read.json()["status"] == "pending"
                answered.add((await http.get("/health")).json()["replica"])
        assert answered == first, "both workers took commands"

        victim = next(iter(first))
        pid = int(victim.split(":")[1])
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(120):
            while True:
                now = await _replicas_answering(node.url, 2)
                if len(now) == 2 and victim not in now:
                    break
                await asyncio.sleep(0.5)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 60)
    assert code == 0
    async with httpx.AsyncClient(base_url=node.url, timeout=2) as http:
        try:
            await http.get("/health")
            raise AssertionError("a worker still answers after SIGTERM")
        except httpx.TransportError:
            pass


async def test_workers_on_a_taken_port_say_so_and_exit_non_zero(tmp_path: Path) -> None:
    node = ServeProcess(tmp_path / "data", "taken")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", node.port))
        taken.listen()
        proc = await asyncio.create_subprocess_exec(
            *FLP, "serve", "--workers", "2", env=node.env, stdout=PIPE, stderr=PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{node.port}" in err.decode()
    assert "Traceback" not in err.decode() + out.decode()
