"""Rebuilt read models equal the live ones, and the checkpoint protects against double-apply."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import orjson

from commands.fleet import parse_public_key
from commands.handlers import CommandContext
from domain.fleet import RecordNodeConnected
from flp.wiring import Container
from projections.ports import Doc, DocChange
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
    reached = await container.projections.rebuild(container.store)
    assert reached == head
    rebuilt = {name: await container.read_models.dump(name) for name in PROJECTION_NAMES}
    assert rebuilt == live


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


async def test_projections_leave_the_documents_they_are_given_as_they_were(
    api: httpx.AsyncClient, container: Container, tmp_path: Path
) -> None:
    """The runner keeps the documents it committed and hands them, uncopied, to the next batch
    and to live subscribers: a projection that changed its input in place would change what a
    subscriber was sent (and the runner's next working copy) behind their backs."""
    handed_out: list[tuple[DocChange, bytes, bytes | None]] = []

    def listener(changes: list[DocChange]) -> None:
        for c in changes:
            handed_out.append((c, orjson.dumps(c.doc), orjson.dumps(c.before) if c.before is not None else None))

    container.projections.listeners.append(listener)
    await scripted_workload(api)
    await fleet_workload(api, container, tmp_path)
    await container.projections.wait_for(await container.store.head_position())
    assert len(handed_out) > 100
    for change, doc, before in handed_out:  # every version stayed the one it was handed out as
        assert orjson.dumps(change.doc) == doc, (change.projection, change.key, change.position)
        assert before is None or orjson.dumps(change.before) == before
    assert any(c.projection == "job_detail" and c.patch for c, _, _ in handed_out)

    events = await container.store.read_all(0, 10_000)
    for projection in all_projections():  # and each projection alone, event by event
        docs: dict[str, Doc] = {}
        for recorded in events:
            event = recorded.to_event()
            for key in projection.keys(event):
                given = docs.get(key)
                snapshot = orjson.dumps(given)
                after = projection.apply(given, event, recorded)
                assert orjson.dumps(given) == snapshot, (projection.name, recorded.type, key)
                if after is not None:
                    docs[key] = after
        assert docs == await container.read_models.dump(projection.name)
