"""The fleet process manager against a real secured SuperLink: it applies the stream, removes
nodes the stream does not know, and reconciles again after the SuperLink lost its state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from commands.fleet import parse_public_key, register_node, revoke_node
from commands.handlers import CommandContext
from fl_runtime.control import FlowerControl
from fl_runtime.engine import EngineConfig, FlowerEngine
from fl_runtime.fleet_sync import FleetSync
from fl_runtime.pki import default_hosts, init_pki
from flp.wiring import Container
from tests.fleet.keys import ec_keypair

OPS = CommandContext(actor="ops")
pytestmark = pytest.mark.flower  # a real SuperLink


async def test_reconciles_the_superlink_with_the_fleet_stream(container: Container, tmp_path: Path) -> None:
    data = container.settings.data_dir
    init_pki(data, default_hosts())
    keys = {n: ec_keypair(tmp_path, n)[1].read_text() for n in ("keep", "gone", "stray")}
    await register_node(container.fleet, container.artifacts, "keep", keys["keep"], ctx=OPS)
    await register_node(container.fleet, container.artifacts, "gone", keys["gone"], ctx=OPS)
    engine = FlowerEngine(EngineConfig(mode="deployment", data_dir=data, supernodes=0, secure=True))
    await asyncio.to_thread(engine.start)
    try:
        control = FlowerControl(engine.control_address, root_certificates=engine.ca_file)
        sync = FleetSync(container.fleet, container.artifacts, lambda: control)
        # someone registered a node by hand (flwr supernode register): not in the stream
        await asyncio.to_thread(control.register_node, parse_public_key(keys["stray"]).pem, "stray")
        report = await sync.reconcile(control)
        assert sorted(report.registered) == ["gone", "keep"] and len(report.unregistered) == 1
        assert _live(control) == {"gone", "keep"}
        await revoke_node(container.fleet, "gone", reason="lost", ctx=OPS)
        report = await sync.reconcile(control)
        assert report.unregistered == ["gone"] and _live(control) == {"keep"}
        idle = await sync.reconcile(control)
        assert (idle.registered, idle.unregistered, idle.errors) == ([], [], [])
        control.close()

        # the SuperLink comes back without its database: the next pass registers the fleet again
        await asyncio.to_thread(engine.stop)
        for db in engine.root.glob("superlink-*.db*"):
            db.unlink()
        await asyncio.to_thread(engine.start)
        control = FlowerControl(engine.control_address, root_certificates=engine.ca_file)
        assert _live(control) == set()
        report = await sync.reconcile(control)
        assert report.registered == ["keep"] and _live(control) == {"keep"}
        control.close()
    finally:
        await asyncio.to_thread(engine.stop)


def _live(control: FlowerControl) -> set[str]:
    return {n.name for n in control.list_nodes() if n.status != "unregistered"}
