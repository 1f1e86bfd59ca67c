"""A real OTLP/HTTP receiver (oteltap) on a free loopback port, and `flp serve` as a process
exporting its traces there (the test process itself keeps OTEL_SDK_DISABLED=true)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

from config.ports import free_port
from config.settings import Settings
from tests.auth.helpers import admin_headers

FLP = str(Path(sys.executable).with_name("flp"))


@dataclass
class Spans:
    """Every span the receiver got since the test began (collected in the background)."""

    receiver: OtelTapHttpProtobufReceiver
    seen: list[Any] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def collect(self) -> None:
        async for span in self.receiver.stream_traces():
            self.seen.append(span)
            self.arrived.set()

    async def until(self, done: Any, timeout_s: float = 60.0) -> list[Any]:
        """Wait until `done(spans so far)` holds; then all spans so far."""
        async with asyncio.timeout(timeout_s):
            while not done(self.seen):
                self.arrived.clear()
                await self.arrived.wait()
        return self.seen


@pytest.fixture
async def otlp() -> AsyncIterator[tuple[Spans, int]]:
    port = free_port()
    async with OtelTapHttpProtobufReceiver(OtelTapHttpProtobufReceiverSettings(http_port=port)) as receiver:
        spans = Spans(receiver)
        collector = asyncio.create_task(spans.collect())
        yield spans, port
        collector.cancel()


@dataclass
class Served:
    url: str
    settings: Settings
    process: subprocess.Popen[bytes]

    @property
    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=admin_headers(self.settings), timeout=30)

    def scrape_headers(self) -> dict[str, str]:
        token = (self.settings.data_dir / "secrets" / "metrics-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}


@contextmanager
def serve(data_dir: Path, otlp_port: int | None, **env: str) -> Iterator[Served]:
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full.update(
        {
            "FLP_DATA_DIR": str(data_dir),
            "FLP_API_PORT": str(port),
            "FLP_FLOWER_MODE": "off",
            "FLP_RATE_LIMIT_PER_MINUTE": "0",
            "OTEL_SERVICE_NAME": "flp-under-test",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fraction of a second
            **env,
        }
    )
    if otlp_port is not None:
        full["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{otlp_port}"
    log = (data_dir.parent / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen([FLP, "serve"], env=full, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, (data_dir.parent / f"serve-{port}.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise TimeoutError("flp serve did not come up")
        yield Served(url, Settings(data_dir=data_dir), proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@asynccontextmanager
async def client(served: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with served.http as http:
        yield http
