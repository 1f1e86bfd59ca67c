"""Real Flower jobs through the platform on the simulation engine (one shared SuperLink)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from typing import Any

import pytest
import torch

from domain.events import JobCompleted, JobConfig
from fl_runtime.jobs import run_flower_job
from tests.fl_runtime.conftest import Platform, kill_and_await_restart

pytestmark = pytest.mark.asyncio(loop_scope="module")

SMALL_JOB: dict[str, Any] = {"rounds": 2, "num_clients": 2, "min_clients": 2, "strategy": "fedavg"}
_first_job: dict[str, Any] = {}


def per_round_metrics(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["data"]["round"], e["data"]["train_metrics"], e["data"]["evaluate_metrics"], e["data"]["central_metrics"])
        for e in events
        if e["type"] == "RoundCompleted"
    ]


async def test_simulation_job_end_to_end(sim_platform: Platform) -> None:
    job_id = await sim_platform.start_job(**SMALL_JOB)
    detail = await sim_platform.wait_terminal(job_id)
    events = await sim_platform.events(job_id)
    _first_job.update(job_id=job_id, events=events)

    assert [e["type"] for e in events] == [
        "JobCreated",
        "JobStarted",
        "ClientJoined",  # when round 1 sampled them: their first participation
        "ClientJoined",
        "RoundStarted",
        "ClientUpdateReceived",
        "ClientUpdateReceived",
        "RoundCompleted",
        "RoundStarted",
        "ClientUpdateReceived",
        "ClientUpdateReceived",
        "RoundCompleted",
        "JobCompleted",
    ], detail
    starts = [e["data"] for e in events if e["type"] == "RoundStarted"]
    joined = [e["data"]["client_id"] for e in events if e["type"] == "ClientJoined"]
    assert [s["round"] for s in starts] == [1, 2] and all(sorted(s["sampled"]) == sorted(joined) for s in starts)
    started = events[1]
    assert started["metadata"]["actor"] == "flower-supervisor"
    rounds = [e["data"] for e in events if e["type"] == "RoundCompleted"]
    for r in rounds:
        assert (r["sampled"], r["replied"], r["failed"]) == (2, 2, 0)
        assert set(r["train_metrics"]) == {"train_loss"}
        assert set(r["evaluate_metrics"]) == {"eval_loss", "eval_acc"}
        assert 0.0 <= r["central_metrics"]["central_acc"] <= 1.0
        assert r["duration_s"] > 0
    updates = [e["data"] for e in events if e["type"] == "ClientUpdateReceived"]
    assert all(u["num_examples"] > 0 and "train_loss" in u["metrics"] and "eval_acc" in u["metrics"] for u in updates)
    assert rounds[1]["central_metrics"]["central_acc"] > rounds[0]["central_metrics"]["central_acc"] - 0.05

    completed = events[-1]["data"]
    assert completed["model_sha256"] == rounds[-1]["model_sha256"]
    assert completed["final_metrics"]["central_acc"] == rounds[-1]["central_metrics"]["central_acc"]

    # the job board shows it completed, with metrics
    board = (await sim_platform.http.get("/jobs")).json()["items"]
    row = next(r for r in board if r["job_id"] == job_id)
    assert row["status"] == "completed" and row["round"] == 2
    assert row["latest_metrics"]["central_acc"] == completed["final_metrics"]["central_acc"]
    assert row["run_id"] == started["data"]["run_id"]

    # the final model: bytes match the hash in the events and load as a state dict
    model = await sim_platform.http.get(f"/jobs/{job_id}/model")
    assert model.status_code == 200
    assert hashlib.sha256(model.content).hexdigest() == completed["model_sha256"]
    state = torch.load(io.BytesIO(model.content), weights_only=True)
    assert state["layers.0.weight"].shape == (64, 64) and state["layers.2.weight"].shape == (10, 64)

    # reporting is idempotent on (job, round): a retried report appends nothing new
    body = {"round": 2, "sampled": 2, "results": [], "central_metrics": {}}
    retry = await sim_platform.http.post(
        f"/jobs/{job_id}/rounds", json=body, headers={"Idempotency-Key": f"job-{job_id}-round-2"}
    )
    assert retry.status_code < 300 and retry.json()["duplicate"] is True
    assert len(await sim_platform.events(job_id)) == len(events)

    # artifacts are content-addressed: a body that does not hash to the key is refused
    bad = await sim_platform.http.put(f"/artifacts/{'0' * 64}", content=b"not this")
    assert bad.status_code == 422


async def test_same_seed_gives_identical_round_metrics(sim_platform: Platform) -> None:
    if not _first_job:
        pytest.skip("needs test_simulation_job_end_to_end's job")
    job_id = await sim_platform.start_job(**SMALL_JOB)
    assert (await sim_platform.wait_terminal(job_id))["status"] == "completed"
    again = await sim_platform.events(job_id)
    assert per_round_metrics(again) == per_round_metrics(_first_job["events"])
    models = [e["data"]["model_sha256"] for e in again if e["type"] == "RoundCompleted"]
    first = [e["data"]["model_sha256"] for e in _first_job["events"] if e["type"] == "RoundCompleted"]
    assert models == first


async def test_failing_and_silent_clients_are_recorded_and_job_continues_above_min_clients(
    sim_platform: Platform,
) -> None:
    """Partition 1 raises, partition 2 goes silent (sampled, never replies in time); min_clients=1
    keeps the job going. Also runs Flower's FedAdam on Dirichlet(0.5) partitions."""
    job_id = await sim_platform.start_job(
        rounds=1,
        num_clients=3,
        min_clients=1,
        strategy="fedadam",
        partitioning="dirichlet",
        dirichlet_alpha=0.5,
        hyperparameters={"fail_partitions": "1", "stall_partitions": "2", "stall_seconds": 45, "reply_timeout": 20},
    )
    detail = await sim_platform.wait_terminal(job_id)
    events = await sim_platform.events(job_id)
    assert detail["status"] == "completed", (detail.get("reason"), [e["type"] for e in events])
    failed = sorted((e["data"] for e in events if e["type"] == "ClientFailed"), key=lambda f: f["code"])
    assert [f["code"] for f in failed] == ["CLIENT_APP_RAISED_EXCEPTION", "NO_REPLY"]
    assert "injected failure on partition 1" in failed[0]["reason"]
    assert failed[1]["reason"] == "no reply within 20s"
    round_1 = next(e["data"] for e in events if e["type"] == "RoundCompleted")
    assert (round_1["sampled"], round_1["replied"], round_1["failed"]) == (3, 1, 2)
    assert [e["type"] for e in events].count("ClientUpdateReceived") == 1


async def test_unknown_hyperparameter_fails_the_job_without_a_run(sim_platform: Platform) -> None:
    job_id = await sim_platform.start_job(rounds=1, num_clients=2, min_clients=2, hyperparameters={"momentum": 0.9})
    detail = await sim_platform.wait_terminal(job_id, timeout_s=30)
    assert detail["status"] == "failed" and "unknown hyperparameter 'momentum'" in detail["reason"]
    control = sim_platform.runtime.control
    assert control is not None
    assert not [r for r in (await asyncio.to_thread(control.list_runs)).values() if r.job_id == job_id]


async def test_a_superlink_that_dies_is_restarted_and_jobs_run_again(sim_platform: Platform) -> None:
    engine = sim_platform.runtime.engine
    superlink = engine.processes[0]
    assert superlink.name == "superlink"
    await kill_and_await_restart(superlink, timeout_s=30)

    # and a job runs again; started in-process with the helper the CLI/demo can use
    container = sim_platform.server.container
    seen: list[int] = []
    end = await run_flower_job(
        container.store,
        container.jobs,
        "after-restart-1",
        JobConfig(name="again", rounds=2, num_clients=2, min_clients=2),
        on_round=lambda r: seen.append(r.round),
        timeout_s=150,
    )
    assert isinstance(end, JobCompleted) and seen == [1, 2]
    assert end.final_metrics["central_acc"] > 0.1 and end.model_sha256 is not None
