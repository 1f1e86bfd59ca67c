"""A real `flp serve` process (the console script of this venv) on a free loopback port, with
its log in a file beside the data dir; killed with SIGKILL or stopped with SIGTERM by tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from config.ports import free_port

FLP = [str(Path(sys.executable).with_name("flp"))]


class ServeProcess:
    def __init__(self, data_dir: Path, name: str = "serve", **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "FLP_DATA_DIR": str(data_dir),
            "FLP_API_PORT": str(self.port),
            "FLP_FLOWER_MODE": "off",
            "FLP_RATE_LIMIT_PER_MINUTE": "0",
            **env,
        }
        self.log = data_dir.parent / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.up = asyncio.Event()

    async def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(*FLP, "serve", env=self.env, stdout=log, stderr=log)
        async with httpx.AsyncClient(base_url=self.url) as probe:
            for _ in range(1200):
                try:
                    if (await probe.get("/health")).status_code == 200:
                        self.up.set()
                        return
                except httpx.TransportError:
                    pass
                assert self.proc.returncode is None, self.log.read_text()[-3000:]
                await asyncio.sleep(0.05)
        raise TimeoutError("flp serve did not come up")

    async def kill(self) -> None:
        assert self.proc is not None
        self.up.clear()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        self.up.clear()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.proc.wait(), 60)
