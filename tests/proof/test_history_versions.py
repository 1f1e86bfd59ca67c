"""Old events stay readable (upcast), and replay says "not re-executable" instead of passing
when the history lacks what it needs: no provenance, or only the updates' hashes."""

from __future__ import annotations

import io

import httpx
import torch
from typer.testing import CliRunner

from api.auth.principal import Role
from flp.cli import app as cli
from flp.wiring import Container
from persistence.records import RecordedEvent
from tests.auth.helpers import role_headers
from tests.conftest import job_body, round_body

SHA = "ab" * 32


def recorded(type_name: str, data: dict[str, object]) -> RecordedEvent:
    return RecordedEvent("e1", "job-j", 2, 2, type_name, 1, data, {}, "0" * 64, "0" * 64)


def test_v1_events_upcast_to_the_current_classes() -> None:
    started = recorded("JobStarted", {"job_id": "j", "run_id": "r"}).to_event()
    assert started.schema_version == 2 and started.provenance is None  # type: ignore[attr-defined]
    update = recorded(
        "ClientUpdateReceived", {"job_id": "j", "round": 1, "client_id": "a", "num_examples": 5, "metrics": {}}
    ).to_event()
    assert update.schema_version == 2
    assert (update.update_sha256, update.weight, update.update_norm) == (None, None, None)  # type: ignore[attr-defined]
    done = recorded(
        "RoundCompleted", {"job_id": "j", "round": 1, "sampled": 2, "replied": 2, "failed": 0, "model_sha256": SHA}
    ).to_event()
    assert done.schema_version == 2 and done.strategy_state_sha256 is None  # type: ignore[attr-defined]


PROVENANCE = {
    "initial_model_sha256": SHA,
    "strategy": {"name": "fedavg", "flower_class": "FedAvg", "params": {"min_train_nodes": 2}},
    "app_sha256": SHA,
    "versions": {"flwr": "1.42.0"},
    "keep_client_updates": False,
}


async def test_replay_of_jobs_that_cannot_be_re_executed(api: httpx.AsyncClient, container: Container) -> None:
    auditor = role_headers(container.settings, Role.AUDITOR)
    # an external job: no provenance at all
    assert (await api.post("/jobs", json=job_body(job_id="ext"))).status_code == 201
    await api.post("/jobs/ext/rounds", json=round_body(1))
    report = (await api.get("/jobs/ext/replay", headers=auditor)).json()
    assert report["ok"] is False and report["re_executable"] is False
    assert "no provenance" in report["reason"]
    # a job that kept only the hashes: its initial model artifact is there, its updates are not
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2)}, buffer)
    sha = await container.artifacts.put(buffer.getvalue())
    assert (await api.post("/jobs", json=job_body(job_id="hashes"))).status_code == 201
    runtime = role_headers(container.settings, Role.RUNTIME, job_id="hashes")
    body = {"run_id": "r1", "provenance": {**PROVENANCE, "initial_model_sha256": sha}}
    assert (await api.post("/jobs/hashes/start", json=body, headers=runtime)).status_code == 200
    results = [{"client_id": c, "num_examples": 10, "update_sha256": SHA, "weight": 0.5} for c in ("a", "b")]
    rnd = round_body(1, results=results, model_sha256=SHA)
    assert (await api.post("/jobs/hashes/rounds", json=rnd, headers=runtime)).status_code == 200, rnd
    report = (await api.get("/jobs/hashes/replay", headers=auditor)).json()
    assert report["re_executable"] is False and report["ok"] is False
    assert "not in the store" in report["reason"] and "keep_client_updates=false" in report["reason"]
    # bad input: a weight outside [0, 1] is a 422 naming the field, never a 500
    bad = round_body(2, results=[{"client_id": "a", "num_examples": 1, "weight": 7}])
    response = await api.post("/jobs/hashes/rounds", json=bad, headers=runtime)
    assert response.status_code == 422 and "weight" in response.text


def test_cli_replay_of_an_unknown_job_is_a_clear_error(tmp_path: object) -> None:
    result = CliRunner().invoke(
        cli, ["audit", "replay", "nope"], env={"FLP_DATA_DIR": str(tmp_path), "FLP_FLOWER_MODE": "off"}
    )
    assert result.exit_code == 1 and "not found" in result.output
