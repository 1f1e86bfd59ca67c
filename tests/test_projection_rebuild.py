"""Rebuilt read models equal the live ones, and the checkpoint protects against double-apply."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from commands.fleet import parse_public_key
from commands.handlers import CommandContext
from domain.fleet import RecordNodeConnected
from flp.wiring import Container
from projections.registry import PROJECTION_NAMES, all_projections
from projections.runner import ProjectionRunner
from tests.conftest import job_body, round_body
from tests.fleet.keys import ec_keypair


async def scripted_workload(api: httpx.AsyncClient, jobs: int = 8) -> None:
    rng = random.Random(7)
    for c in ("a", "b", "c"):
        await api.post("/clients", json={"client_id": c, "name": f"device {c}"})
    for j in range(jobs):
        job = f"job{j}"
        await api.post("/jobs", json=job_body(job_id=job, rounds=3))
        await api.post(f"/jobs/{job}/clients", json={"client_id": "a"})
        for rnd in range(1, rng.randint(1, 3) + 1):
            failures = [{"client_id": "c", "code": "timeout", "reason": "no reply"}] if rng.random() < 0.5 else []
            sampled = ["a", "b", "c"] if failures else ["a", "b"]
            await api.post(f"/jobs/{job}/rounds/started", json={"round": rnd, "client_ids": sampled})
            await api.post(f"/jobs/{job}/rounds", json=round_body(rnd, failures=failures))
        ending = rng.choice(["complete", "fail", "cancel", None])
        if ending == "complete":
            await api.post(f"/jobs/{job}/complete", json={"final_metrics": {"accuracy": 0.9}})
        elif ending == "fail":
            await api.post(f"/jobs/{job}/fail", json={"reason": "diverged"})
        elif ending == "cancel":
            await api.post(f"/jobs/{job}/cancel", json={"reason": "operator"})
    await api.post("/clients/b/leave", json={"reason": "retired"})


async def fleet_workload(api: httpx.AsyncClient, container: Container, tmp_path: Path) -> None:
    """SuperNodes registered, one seen online and joining a job under its Flower node id, one revoked."""
    keys = [ec_keypair(tmp_path, f"pi-{i}")[1].read_text() for i in range(2)]
    for i, key in enumerate(keys):
        await api.post("/fleet/nodes", json={"name": f"pi-{i}", "public_key": key, "reason": "bench"})
    connected = RecordNodeConnected(fingerprint=parse_public_key(keys[0]).fingerprint, flower_node_id="4242")
    await container.fleet.execute("", connected, CommandContext(actor="fleet-sync"))
    await api.post("/jobs", json=job_body(job_id="fleet-job", rounds=1))
    await api.post("/jobs/fleet-job/clients", json={"client_id": "node-4242"})
    await api.delete("/fleet/nodes/pi-1", params={"reason": "retired"})


async def test_rebuild_equals_live(api: httpx.AsyncClient, container: Container, tmp_path: Path) -> None:
    await scripted_workload(api)
    await fleet_workload(api, container, tmp_path)
    head = await container.store.head_position()
    await container.projections.wait_for(head)
    live = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
    assert len(live["job_board"]) == 9 and len(live["client_fleet"]) == 6
    assert live["client_fleet"]["pi-0"]["status"] == "connected" and live["client_fleet"]["pi-1"]["status"] == "revoked"
    assert live["client_fleet"]["node-4242"]["fleet_node"] == "pi-0"
    node = (await api.get("/fleet/nodes/pi-0")).json()
    assert node["jobs"] == ["fleet-job"] and node["flower_node_id"] == "4242"
    rounds = [r for doc in live["job_detail"].values() for r in doc["rounds"]]
    assert rounds and all(r["sampled_clients"] and r["started_at"] for r in rounds), "RoundStarted is projected"
    stored = {(n, k): await container.read_models.get_json(n, k) for n in PROJECTION_NAMES for k in live[n]}
    reached = await container.projections.rebuild(container.store)
    assert reached == head
    rebuilt = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
    assert rebuilt == live
    # byte for byte, though live commits came one command at a time and the rebuild's in one batch
    # (the runner encodes each document once, for its cache and the store's write)
    assert {(n, k): await container.read_models.get_json(n, k) for n, k in stored} == stored


async def test_one_projection_rebuilds_alone(api: httpx.AsyncClient, container: Container) -> None:
    await scripted_workload(api, jobs=2)
    await container.projections.wait_for(await container.store.head_position())
    before = await container.read_models.dump("client_fleet")
    board_checkpoint = await container.read_models.get_checkpoint("job_board")
    await container.projections.rebuild(container.store, ["client_fleet"])
    assert await container.read_models.dump("client_fleet") == before
    assert await container.read_models.get_checkpoint("job_board") == board_checkpoint


async def test_replaying_a_batch_twice_changes_nothing(api: httpx.AsyncClient, container: Container) -> None:
    await scripted_workload(api, jobs=2)
    await container.projections.wait_for(await container.store.head_position())
    before = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
    second_runner = ProjectionRunner(container.read_models, container.projections.projections)
    await second_runner.apply(await container.store.read_all(0, 10_000))
    after = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
    assert after == before


async def test_a_fresh_event_makes_its_document_whatever_it_is_given(
    api: httpx.AsyncClient, container: Container
) -> None:
    """`Projection.fresh_on`: for every such event, `apply` gives the same document from None
    and from any document (another job's, a stale one), so the runner may skip the lookup."""
    await scripted_workload(api, jobs=3)
    await container.projections.wait_for(await container.store.head_position())
    recorded = await container.store.read_all(0, 10_000)
    checked = 0
    for projection in all_projections():
        docs = list((await container.read_models.dump(projection.name)).values())
        for r in recorded:
            event = r.to_event()
            if not isinstance(event, projection.fresh_on):
                continue
            made = projection.apply(None, event, r)
            for given in [*docs, {"stale": True, "rounds": [{"round": 9}], "clients": {"x": 1}}]:
                assert projection.apply(copy.deepcopy(given), event, r) == made, projection.name
                checked += 1
    assert checked >= 3 * 3 * 4  # three projections, three jobs, each given four documents


async def test_new_jobs_are_projected_without_looking_up_their_documents(
    api: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    await api.post("/clients", json={"client_id": "a", "name": "device a"})
    await container.projections.wait_for(await container.store.head_position())
    looked_up: list[tuple[str, list[str]]] = []
    get_many = container.read_models.get_many

    async def counted(projection: str, keys: list[str]) -> dict[str, Any]:
        looked_up.append((projection, keys))
        return await get_many(projection, keys)

    monkeypatch.setattr(container.read_models, "get_many", counted)
    assert (await api.post("/jobs", json=job_body(job_id="fresh", rounds=2))).status_code == 201
    assert looked_up == []
    assert (await api.post("/jobs/fresh/clients", json={"client_id": "a"})).status_code == 200
    board = (await api.get("/jobs/fresh")).json()
    assert board["clients"] == ["a"] and board["status"] == "pending"
