"""Three real `flp serve` replicas on one embedded data dir (the same SQLite files) behind a
loopback round-robin, publishing to a real (tansu) Kafka broker and running real Flower jobs.
Commands flow through all three while the lease owner of each background service is killed
with SIGKILL in turn (and restarted). Afterwards: every acknowledged command's events are stored
once, positions are gap-free, the read models equal a rebuild, each Flower job was submitted
once and ended with a reason, the topic holds every position with one event id each, the seals
verify, and ownership of every service moved to a live replica within the lease's bound."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from adapters.kafka_tansu import TansuBroker
from config.settings import Settings
from flp.cli.sse_client import read_sse
from tests.auth.helpers import admin_headers
from tests.conftest import job_body, round_body
from tests.kafka.conftest import read_topic
from tests.live_server import rebuilt_and_live
from tests.serve_process import ServeProcess

TTL_S = 2.0
# the owner renews every TTL/3; a silent one is replaced once its lease ran out and the next
# replica's attempt (every TTL/3) sees that: about 1.3 x TTL, bounded here with room for a busy CI
TAKEOVER_BOUND_S = 3 * TTL_S + 5
SERVICES = ("flower_runtime", "projections", "kafka_relay", "seal_mirror")
CLIENTS = 6
JOBS_PER_CLIENT = 5
TOPIC = "flp.events"
PARTITIONS = 3


@pytest.fixture
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as b:
        yield b


class Replicas:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        common = {"FLP_LEASE_TTL_S": str(TTL_S), **env}
        self.nodes = [ServeProcess(data_dir, f"replica-{i}", **common) for i in range(3)]
        self.headers: dict[str, str] = {}

    async def start(self) -> None:
        await self.nodes[0].start()  # the first one creates the data dir and the admin
        self.headers = admin_headers(Settings(data_dir=self.data_dir))
        await asyncio.gather(*(n.start() for n in self.nodes[1:]))

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes), return_exceptions=True)

    async def health(self, node: ServeProcess) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=node.url, timeout=5) as http:
            body: dict[str, Any] = (await http.get("/health")).json()
            return body

    async def owners(self) -> dict[str, str | None]:
        """Each service's owner as a live replica reports it (None: nobody holds it right now)."""
        for node in self.nodes:
            if node.up.is_set():
                with_owner = await self.health(node)
                return {s: with_owner["services"].get(s, {}).get("owner") for s in SERVICES}
        raise AssertionError("no replica is up")

    async def replica_ids(self) -> dict[str, ServeProcess]:
        return {(await self.health(n))["replica"]: n for n in self.nodes if n.up.is_set()}


def plan(client: int) -> list[tuple[str, dict[str, Any], str]]:
    steps: list[tuple[str, dict[str, Any]]] = []
    for n in range(JOBS_PER_CLIENT):
        job = f"c{client}-{n}"
        steps.append(("/jobs", job_body(job_id=job, rounds=2)))
        steps += [(f"/jobs/{job}/rounds", round_body(rnd)) for rnd in (1, 2)]
        steps.append((f"/jobs/{job}/complete", {"final_metrics": {"accuracy": 0.9}}))
    return [(path, body, f"{client}-{i}") for i, (path, body) in enumerate(steps)]


async def run_client(replicas: Replicas, client: int, acked: dict[str, list[Any]]) -> None:
    """Round-robin over the replicas; a request to a killed one is retried on the next (same key)."""
    turn = client
    for path, body, key in plan(client):
        while True:
            node = replicas.nodes[turn % 3]
            turn += 1
            if not node.up.is_set():
                await asyncio.sleep(0.02)
                continue
            try:
                async with httpx.AsyncClient(base_url=node.url, headers=replicas.headers, timeout=15) as http:
                    r = await http.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError:
                continue
            assert r.status_code in (200, 201), (path, r.status_code, r.text)
            acked.setdefault(key, []).append(r.json()["events"])
            break
        await asyncio.sleep(0.05)  # keep the load going across all the kills


async def start_flower_job(replicas: Replicas, job_id: str) -> None:
    body = {"job_id": job_id, "name": job_id, "runtime": "flower", "seed": 7, "rounds": 3}
    body |= {"num_clients": 2, "min_clients": 2}
    async with httpx.AsyncClient(base_url=replicas.nodes[1].url, headers=replicas.headers, timeout=15) as http:
        r = await http.post("/jobs", json=body)
        assert r.status_code == 201, r.text


async def take_over(replicas: Replicas, service: str) -> float:
    """Kill the replica owning `service`, restart it, and wait until a live replica owns it."""
    owner = (await replicas.owners())[service]
    ids = await replicas.replica_ids()
    assert owner in ids, (service, owner, list(ids))
    victim = ids[owner]
    await victim.kill()
    killed_at = time.monotonic()
    restart = asyncio.create_task(victim.start())
    while True:
        now = (await replicas.owners())[service]
        if now is not None and now != owner:
            elapsed = time.monotonic() - killed_at
            break
        assert time.monotonic() - killed_at < 60, f"{service} still not taken over from {owner}"
        await asyncio.sleep(0.1)
    await restart
    return elapsed


def flower_processes_of(data_dir: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["environ"]):
        environ = proc.info["environ"] or {}
        if environ.get("FLP_PROCESS_OWNER") and environ.get("FLP_DATA_DIR") == str(data_dir):
            found.append(proc.pid)
    return found


@pytest.fixture
async def replicas(tmp_path: Path, broker: TansuBroker) -> AsyncIterator[Replicas]:
    env = {
        "FLP_FLOWER_MODE": "simulation",
        "FLP_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "FLP_KAFKA_TOPIC": TOPIC,
        "FLP_KAFKA_PARTITIONS": str(PARTITIONS),
    }
    group = Replicas(tmp_path / "flp", **env)
    await group.start()
    try:
        yield group
    finally:
        await group.stop()


async def test_three_replicas_survive_killing_each_owner(replicas: Replicas, broker: TansuBroker) -> None:
    data_dir = replicas.data_dir
    flower_jobs = ["fl-1", "fl-2", "fl-after"]
    for job in flower_jobs[:2]:
        await start_flower_job(replicas, job)
    acked: dict[str, list[Any]] = {}
    load = asyncio.gather(*(run_client(replicas, c, acked) for c in range(CLIENTS)))
    takeovers: dict[str, float] = {}
    try:
        for service in SERVICES:
            takeovers[service] = await take_over(replicas, service)
        await start_flower_job(replicas, "fl-after")  # run by the runtime's new owner
        await asyncio.wait_for(load, timeout=180)
        async with httpx.AsyncClient(base_url=replicas.nodes[2].url, headers=replicas.headers, timeout=15) as http:
            finished: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + 240
            while len(finished) < len(flower_jobs) and time.monotonic() < deadline:
                for job in flower_jobs:
                    doc = (await http.get(f"/jobs/{job}")).json()
                    if doc["status"] in ("completed", "failed", "cancelled"):
                        finished[job] = doc
                await asyncio.sleep(0.5)
            assert len(finished) == len(flower_jobs), "a Flower job never ended"
            # a run on a killed replica's SuperLink is lost, and said so; one started after completes
            assert all(d["status"] == "completed" or "lost" in d["reason"] for d in finished.values()), finished
            assert finished["fl-after"]["status"] == "completed", finished
            flower_events = {}
            for job in flower_jobs:
                items = (await http.get(f"/jobs/{job}/events", params={"limit": 1000})).json()["items"]
                flower_events[job] = [e["type"] for e in items]
            report = (await http.get("/audit/verify")).json()
            assert report["ok"] and report["sealed_checked"], report
    finally:
        load.cancel()
    await replicas.stop()
    assert flower_processes_of(data_dir) == [], "a killed replica's Flower processes outlived the group"

    # ownership moved to a live replica within the bound, for every service
    assert set(takeovers) == set(SERVICES)
    assert all(t <= TAKEOVER_BOUND_S for t in takeovers.values()), takeovers
    # exactly one Flower run per job: submitted once, never twice, none lost
    for job, types in flower_events.items():
        assert types.count("JobStarted") == 1, (job, types)
        assert types[-1] in ("JobCompleted", "JobFailed"), (job, types)

    # every acknowledged command's events stored once; retries got the original answer
    assert len(acked) == CLIENTS * JOBS_PER_CLIENT * 4
    for key, answers in acked.items():
        assert all(a == answers[0] for a in answers) and answers[0], key
    with sqlite3.connect(data_dir / "flp.db") as db:
        rows = db.execute("SELECT position, event_id FROM events ORDER BY position").fetchall()
    assert [p for p, _ in rows] == list(range(1, len(rows) + 1))  # gap-free
    stored = Counter(event_id for _, event_id in rows)
    assert all(n == 1 for n in stored.values())
    assert all(stored[e["event_id"]] == 1 for answers in acked.values() for e in answers[0])

    rebuilt, live = await rebuilt_and_live(data_dir, data_dir.parent / "rebuilt.db")
    assert rebuilt == live

    # the relay published every position, each with the one event stored there
    by_position = dict(rows)
    messages = await read_topic(
        broker.bootstrap_servers,
        lambda ms: set(by_position) <= {m.position for m in ms},
        timeout_s=60,
        topic=TOPIC,
        partitions=PARTITIONS,
    )
    assert {m.position for m in messages} == set(by_position)
    assert all(m.value["id"] == by_position[m.position] for m in messages)


async def test_a_replica_pushes_changes_made_through_another(tmp_path: Path) -> None:
    group = Replicas(tmp_path / "flp")
    await group.start()
    a, b, c = group.nodes
    try:
        async with (
            httpx.AsyncClient(base_url=a.url, headers=group.headers, timeout=15) as on_a,
            httpx.AsyncClient(base_url=b.url, headers=group.headers, timeout=15) as on_b,
            httpx.AsyncClient(base_url=c.url, headers=group.headers, timeout=15) as on_c,
        ):
            # one owner per service, and every replica names the same one
            reports = [await group.health(n) for n in group.nodes]
            for service in ("projections", "seal_mirror"):
                assert sum(r["services"][service]["here"] for r in reports) == 1, reports
                assert len({r["services"][service]["owner"] for r in reports}) == 1, reports
            caught_up = asyncio.Event()
            seen: list[Any] = []

            async def follow_on_a() -> None:
                async for message in read_sse(on_a, "/live/jobs", live=caught_up):
                    seen.append(message)
                    if len(seen) == 2:
                        return

            listener = asyncio.create_task(follow_on_a())
            await asyncio.wait_for(caught_up.wait(), 20)
            assert (await on_b.post("/jobs", json=job_body(job_id="via-b"))).status_code == 201
            assert (await on_c.post("/jobs/via-b/cancel", json={"reason": "seen on A?"})).status_code == 200
            await asyncio.wait_for(listener, 20)
            assert [m.data["key"] for m in seen] == ["via-b", "via-b"]
            assert "patch" in seen[1].data  # a JSON Patch against the document A sent first

            # resume on another replica: C replays what A's client missed after its first message
            await on_b.post("/jobs", json=job_body(job_id="later"))
            resumed: list[Any] = []
            async for message in read_sse(on_c, "/live/jobs", last_event_id=seen[0].id):
                resumed.append(message)
                if len(resumed) == 2:
                    break
            assert [m.data["key"] for m in resumed] == ["via-b", "later"]
            assert resumed[0].data["doc"]["status"] == "cancelled"
    finally:
        await group.stop()
