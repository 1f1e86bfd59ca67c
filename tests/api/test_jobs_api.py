"""The HTTP API over httpx against the real ASGI app and a real SQLite store."""

from __future__ import annotations

import httpx

from flp.wiring import Container
from tests.conftest import job_body, round_body


async def start(api: httpx.AsyncClient, job_id: str = "j1", **overrides: object) -> dict[str, object]:
    r = await api.post("/jobs", json=job_body(job_id=job_id, **overrides))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_job_lifecycle_over_http(api: httpx.AsyncClient) -> None:
    created = await start(api)
    assert created["version"] == 1 and created["events"][0]["type"] == "JobCreated"  # type: ignore[index]
    assert (await api.post("/jobs/j1/clients", json={"client_id": "a"})).status_code == 200
    r = await api.post("/jobs/j1/rounds", json=round_body(1))
    assert r.status_code == 200, r.text
    assert [e["type"] for e in r.json()["events"]][-1] == "RoundCompleted"
    assert (await api.post("/jobs/j1/complete", json={"final_metrics": {"accuracy": 0.9}})).status_code == 200

    board = (await api.get("/jobs")).json()
    assert board["total"] == 1
    row = board["items"][0]
    assert row["status"] == "completed" and row["round"] == 1 and row["clients"] == ["a", "b"]
    assert row["latest_metrics"]["accuracy"] == 0.9

    detail = (await api.get("/jobs/j1")).json()
    assert detail["rounds"][0]["central_metrics"] == {"accuracy": 0.6}
    assert len(detail["rounds"][0]["client_updates"]) == 2
    assert [t["type"] for t in detail["timeline"]][0] == "JobCreated"

    assert (await api.get("/jobs", params={"status": "completed"})).json()["total"] == 1
    assert (await api.get("/jobs", params={"status": "running"})).json()["total"] == 0


async def test_history_has_metadata_and_pages(api: httpx.AsyncClient) -> None:
    await start(api)
    await api.post("/jobs/j1/rounds", json=round_body(1), headers={"X-Correlation-ID": "corr-1"})
    full = (await api.get("/jobs/j1/events")).json()
    assert [e["version"] for e in full["items"]] == list(range(1, 7))
    assert full["next"] is None
    rc = full["items"][-1]
    assert rc["metadata"]["correlation_id"] == "corr-1" and rc["metadata"]["actor"]
    assert rc["prev_hash"] == full["items"][-2]["hash"]
    page1 = (await api.get("/jobs/j1/events", params={"limit": 4})).json()
    assert [e["version"] for e in page1["items"]] == [1, 2, 3, 4] and page1["next"] == 5
    page2 = (await api.get("/jobs/j1/events", params={"from_version": page1["next"], "limit": 4})).json()
    assert [e["version"] for e in page2["items"]] == [5, 6] and page2["next"] is None


async def test_state_as_of_any_version(api: httpx.AsyncClient) -> None:
    await start(api)
    await api.post("/jobs/j1/rounds", json=round_body(1))
    await api.post("/jobs/j1/cancel", json={"reason": "enough"})
    v1 = (await api.get("/jobs/j1/state", params={"version": 1})).json()
    assert v1["version"] == 1 and v1["state"]["status"] == "pending" and v1["state"]["round"] == 0
    now = (await api.get("/jobs/j1/state")).json()
    assert now["state"]["status"] == "cancelled" and now["state"]["round"] == 1 and now["state"]["reason"] == "enough"


async def test_global_feed_after_position(api: httpx.AsyncClient) -> None:
    await start(api, "j1")
    await start(api, "j2")
    everything = (await api.get("/events")).json()["items"]
    assert [e["position"] for e in everything] == [1, 2]
    later = (await api.get("/events", params={"after": 1})).json()
    assert [e["stream_id"] for e in later["items"]] == ["job-j2"] and later["next"] == 2


async def test_idempotency_key_retry_appends_nothing(api: httpx.AsyncClient, container: Container) -> None:
    await start(api)
    headers = {"Idempotency-Key": "job-j1-round-1"}
    first = await api.post("/jobs/j1/rounds", json=round_body(1), headers=headers)
    again = await api.post("/jobs/j1/rounds", json=round_body(1), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["duplicate"] is True
    assert [e["event_id"] for e in again.json()["events"]] == [e["event_id"] for e in first.json()["events"]]
    assert await container.store.stream_version("job-j1") == 6


async def test_if_match_conflict_is_409_with_current_version(api: httpx.AsyncClient, container: Container) -> None:
    await start(api)
    r = await api.post("/jobs/j1/rounds", json=round_body(1), headers={"If-Match": "0"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["current_version"] == 1
    assert await container.store.stream_version("job-j1") == 1
    ok = await api.post("/jobs/j1/rounds", json=round_body(1), headers={"If-Match": "1"})
    assert ok.status_code == 200


async def test_clients_register_and_fleet(api: httpx.AsyncClient) -> None:
    r = await api.post("/clients", json={"client_id": "pi-1", "name": "Raspberry", "properties": {"site": "lab"}})
    assert r.status_code == 201
    await start(api)
    await api.post("/jobs/j1/clients", json={"client_id": "pi-1"})
    fleet = (await api.get("/clients/pi-1")).json()
    assert fleet["status"] == "active" and fleet["jobs"] == ["j1"]
    assert (await api.post("/clients/pi-1/leave", json={"reason": "retired"})).status_code == 200
    assert (await api.get("/clients/pi-1")).json()["status"] == "left"
    assert (await api.get("/clients")).json()["total"] == 1


async def test_health_reports_head_and_projection_lag(api: httpx.AsyncClient, container: Container) -> None:
    await start(api)
    health = (await api.get("/health")).json()
    assert health["status"] == "ok" and health["head_position"] == 1
    assert health["projections"]["job_board"] == {"checkpoint": 1, "lag": 0}
    assert (await api.get("/metrics")).status_code == 403  # the admin's token is not a scrape credential
    scrape = {"Authorization": f"Bearer {container.auth.scrape_credential.decode()}"}
    metrics = (await api.get("/metrics", headers=scrape)).text
    assert "flp_store_head_position 1.0" in metrics


async def test_the_board_filters_by_status_in_the_store_with_paging(api: httpx.AsyncClient) -> None:
    for i in range(7):
        await start(api, f"s{i}")
    for i in (1, 3, 5):
        assert (await api.post(f"/jobs/s{i}/cancel", json={"reason": "x"})).status_code == 200
    page = (await api.get("/jobs", params={"status": "cancelled", "limit": 2, "offset": 1})).json()
    assert page["total"] == 3 and [r["job_id"] for r in page["items"]] == ["s3", "s5"]
    assert (await api.get("/jobs", params={"status": "pending"})).json()["total"] == 4


async def test_the_detail_document_keeps_a_bounded_timeline(api: httpx.AsyncClient) -> None:
    from projections.job_detail import TIMELINE

    await start(api, "long", rounds=200, min_clients=1)
    for rnd in range(1, 40):
        assert (await api.post("/jobs/long/rounds", json=round_body(rnd, clients=("a", "b", "c")))).status_code == 200
    detail = (await api.get("/jobs/long")).json()
    assert len(detail["timeline"]) == TIMELINE < detail["version"]
    assert detail["timeline"][-1]["version"] == detail["version"]  # the newest events
    assert len(detail["rounds"]) == 39  # per-round results stay complete


async def test_the_stored_config_is_the_validated_body(api: httpx.AsyncClient) -> None:
    """POST /jobs validates the body once and builds the command from it without validating
    again: what is stored must be what validating the config on its own gives."""
    from domain.events import JobConfig

    hyper = {"lr": 0.1, "epochs": 2, "optimizer": "sgd", "nesterov": True, "big": 2**40}
    body = job_body(job_id="cfg", num_clients=5, min_clients=2, seed=7, hyperparameters=hyper)
    r = await api.post("/jobs", json=body)
    assert r.status_code == 201, r.text
    stored = r.json()["events"][0]["data"]["config"]
    expected = JobConfig.model_validate({k: v for k, v in body.items() if k != "job_id"}).model_dump(mode="json")
    assert stored == expected
    assert [type(stored["hyperparameters"][k]) for k in hyper] == [float, int, str, bool, int]
    refused = await api.post("/jobs", json={**body, "job_id": "cfg2", "min_clients": 9})  # > num_clients
    assert refused.status_code == 422 and "min_clients" in refused.json()["detail"]
