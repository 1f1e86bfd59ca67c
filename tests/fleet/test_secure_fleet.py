"""A secured federation with real processes: the platform's SuperLink with TLS and SuperNode
authentication, SuperNodes run as devices run them (own key pair, the federation's CA).

One platform, two real Flower jobs: registered nodes join and train over TLS, an unregistered key
and a SuperNode with the wrong CA cannot connect; a revoked node is left out of the next run."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from fl_runtime.pki import default_hosts, init_pki
from fl_runtime.processes import ManagedProcess
from tests.fl_runtime.conftest import Platform, serve_platform
from tests.fleet.keys import ec_keypair
from tests.fleet.supernodes import device_supernode

WAIT_S = 60.0
# real Flower processes: serialised with the other Flower tests under `make test` (tests/conftest.py
# on main), and two real jobs take longer than the default per-test timeout on a loaded machine
pytestmark = [pytest.mark.flower, pytest.mark.timeout(900)]


async def until(what: str, check: Any, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.3)
    raise TimeoutError(what)


async def fleet(platform: Platform) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in (await platform.http.get("/fleet/nodes")).json()["items"]}


async def link_status(platform: Platform) -> dict[str, str]:
    """The SuperLink's own view: node name -> status."""
    control = platform.runtime.control
    assert control is not None
    return {n.name: n.status for n in await asyncio.to_thread(control.list_nodes)}


def exited_with(proc: ManagedProcess, *words: str) -> bool:
    text = proc.log_file.read_text() if proc.log_file.exists() else ""
    return not proc.running() and all(w in text for w in words)


async def test_registered_nodes_train_over_tls_others_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "flp"
    pki = init_pki(data, default_hosts())
    wrong_ca = init_pki(tmp_path / "elsewhere", default_hosts()).ca_cert  # a CA the SuperLink's cert is not from
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    keys = {name: ec_keypair(keys_dir, name) for name in ("pi-a", "pi-b", "stranger", "wrong-ca")}
    devices: list[ManagedProcess] = []
    async with serve_platform(data, "deployment", supernodes=0, flower_secure=True) as platform:
        superlink = platform.runtime.engine.processes[0]
        assert "--enable-supernode-auth" in superlink.argv and "--insecure" not in superlink.argv
        assert str(pki.server_cert) in superlink.argv
        for name in ("pi-a", "pi-b", "wrong-ca"):  # the stranger's key is never registered
            body = {"name": name, "public_key": keys[name][1].read_text(), "reason": "test fleet"}
            assert (await platform.http.post("/fleet/nodes", json=body)).status_code == 201
        # the fleet process manager applies the stream to the SuperLink
        await until("nodes registered on the SuperLink", lambda: _has(platform, {"pi-a", "pi-b", "wrong-ca"}))
        address = platform.runtime.engine.control_address
        roles = {
            "pi-a": (pki.ca_cert, 0),
            "pi-b": (pki.ca_cert, 1),
            "stranger": (pki.ca_cert, 0),
            "wrong-ca": (wrong_ca, 0),
        }
        try:
            for name, (ca, partition) in roles.items():
                device = device_supernode(tmp_path / "devices", name, address, keys[name][0], ca, partition, 2)
                device.start()
                devices.append(device)
            by_name = {d.name.removeprefix("device-"): d for d in devices}
            await until("pi-a and pi-b connected", lambda: _connected(platform, {"pi-a", "pi-b"}))

            job_1 = await platform.start_job(rounds=1, num_clients=2, min_clients=2)
            detail = await platform.wait_terminal(job_1, timeout_s=180)
            assert detail["status"] == "completed", [e["type"] for e in await platform.events(job_1)]
            nodes = await fleet(platform)
            ids = {name: f"node-{nodes[name]['flower_node_id']}" for name in ("pi-a", "pi-b")}
            assert sorted(detail["clients"]) == sorted(ids.values())  # the registered nodes trained
            assert [nodes[n]["jobs"] for n in ("pi-a", "pi-b")] == [[job_1], [job_1]]
            assert nodes["pi-a"]["status"] == "connected" and nodes["pi-a"]["last_seen_at"]
            assert nodes["wrong-ca"]["status"] == "registered" and nodes["wrong-ca"]["jobs"] == []
            # refused: an unknown key is not activated, a wrong CA fails the TLS handshake
            assert exited_with(by_name["stranger"], "Failed to activate SuperNode")
            assert exited_with(by_name["wrong-ca"], "CERTIFICATE_VERIFY_FAILED")
            assert "stranger" not in await link_status(platform)

            # revoked: the SuperLink unregisters the node; the next run goes on without it
            revoked = await platform.http.delete("/fleet/nodes/pi-b", params={"reason": "lost in the field"})
            assert revoked.status_code == 200, revoked.text
            await until("pi-b unregistered", lambda: _status_is(platform, "pi-b", "unregistered"))
            job_2 = await platform.start_job(rounds=1, num_clients=1, min_clients=1)
            detail = await platform.wait_terminal(job_2, timeout_s=180)
            assert detail["status"] == "completed", [e["type"] for e in await platform.events(job_2)]
            assert detail["clients"] == [ids["pi-a"]]  # every available node is sampled: pi-b was not
            nodes = await fleet(platform)
            assert nodes["pi-b"]["status"] == "revoked" and nodes["pi-b"]["revoked_reason"] == "lost in the field"
            assert nodes["pi-b"]["jobs"] == [job_1] and nodes["pi-a"]["jobs"] == [job_1, job_2]
        finally:
            for device in devices:
                device.stop()
    fleet_events = [e["type"] for e in (await _fleet_stream(data))]
    assert fleet_events.count("NodeRegistered") == 3 and fleet_events.count("NodeRevoked") == 1


async def _has(platform: Platform, names: set[str]) -> bool:
    return names <= set(await link_status(platform))


async def _status_is(platform: Platform, name: str, status: str) -> bool:
    return (await link_status(platform)).get(name) == status


async def _connected(platform: Platform, names: set[str]) -> bool:
    nodes = await fleet(platform)
    return all(nodes.get(n, {}).get("status") == "connected" for n in names)


async def _fleet_stream(data: Path) -> list[dict[str, Any]]:
    from config.settings import Settings
    from flp.wiring import open_stores

    store, read_models = await open_stores(Settings(data_dir=data))
    try:
        return [r.to_dict() for r in await store.read_stream("fleet")]
    finally:
        await store.close()
        await read_models.close()
