"""When the platform's SuperLink is secured, and that an insecure one says so."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from config.settings import Settings
from fl_runtime.engine import EngineConfig, FlowerEngine


def test_secure_unless_loopback() -> None:
    assert Settings(flower_mode="deployment").flower_secured is False
    assert Settings(flower_mode="deployment", flower_host="0.0.0.0").flower_secured is True  # noqa: S104
    assert Settings(flower_mode="deployment", flower_host="10.0.0.5", flower_secure=False).flower_secured is False
    assert Settings(flower_mode="deployment", flower_secure=True).flower_secured is True


def test_a_secure_superlink_needs_its_certificate_and_registered_nodes_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flp pki init"):
        FlowerEngine(EngineConfig(mode="deployment", data_dir=tmp_path, supernodes=0, secure=True)).start()
    with pytest.raises(ValueError, match="FLP_FLOWER_SUPERNODES=0"):
        FlowerEngine(EngineConfig(mode="deployment", data_dir=tmp_path, supernodes=2, secure=True)).start()


@pytest.mark.flower
async def test_a_loopback_superlink_runs_insecure_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = FlowerEngine(EngineConfig(mode="deployment", data_dir=tmp_path, supernodes=0))
    with caplog.at_level(logging.WARNING, logger="fl_runtime.engine"):
        await asyncio.to_thread(engine.start)
    try:
        assert "--insecure" in engine.processes[0].argv and "--enable-supernode-auth" not in engine.processes[0].argv
        assert any("WITHOUT TLS and SuperNode authentication" in r.getMessage() for r in caplog.records)
    finally:
        await asyncio.to_thread(engine.stop)
