"""FLP_METRICS_PORT: /metrics on a separate listener (for a Prometheus on a private network),
with the state gauges refreshed; it closes with the platform."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from config.ports import free_port
from config.settings import Settings
from flp.wiring import build_container


async def test_a_separate_metrics_listener_serves_the_registry(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(data_dir=tmp_path / "flp", flower_mode="off", metrics_port=port)
    container = await build_container(settings)
    await container.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(100):  # the first refresh of the state gauges
                text = (await http.get("/metrics")).text
                if "flp_jobs{" in text:
                    break
                await asyncio.sleep(0.05)
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"flp_commands", "flp_jobs", "flp_projection_lag_events", "flp_store_head_position"} <= names
    finally:
        await container.stop()
    async with httpx.AsyncClient() as http:
        try:
            await http.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
            raise AssertionError("the listener outlived the platform")
        except httpx.TransportError:
            pass
