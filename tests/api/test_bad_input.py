"""Bad input gets a 4xx problem+json with a reason, and nothing is appended."""

from __future__ import annotations

import httpx
import pytest

from flp.wiring import Container
from tests.conftest import job_body, round_body


async def assert_problem(r: httpx.Response, status: int, reason_part: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and reason_part in body["detail"], body


async def test_malformed_json_is_422_and_appends_nothing(api: httpx.AsyncClient, container: Container) -> None:
    r = await api.post("/jobs", content=b"{not json", headers={"content-type": "application/json"})
    await assert_problem(r, 422, "JSON")
    assert await container.store.head_position() == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"rounds": "many"}, "rounds"),
        ({"rounds": 0}, "rounds"),
        ({"strategy": "magic"}, "strategy"),
        ({"min_clients": 9, "num_clients": 3}, "min_clients"),
        ({"job_id": "bad id with spaces"}, "job_id"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
async def test_wrong_types_and_values_are_422(
    api: httpx.AsyncClient, container: Container, overrides: dict[str, object], reason: str
) -> None:
    r = await api.post("/jobs", json=job_body(**overrides))
    await assert_problem(r, 422, reason)
    assert await container.store.head_position() == 0


async def test_unknown_job_is_404(api: httpx.AsyncClient, container: Container) -> None:
    await assert_problem(await api.get("/jobs/nope"), 404, "nope")
    await assert_problem(await api.get("/jobs/nope/events"), 404, "nope")
    await assert_problem(await api.get("/jobs/nope/state"), 404, "nope")
    await assert_problem(await api.post("/jobs/nope/rounds", json=round_body(1)), 404, "does not exist")
    await assert_problem(await api.post("/jobs/nope/cancel", json={"reason": "x"}), 404, "does not exist")
    assert await container.store.head_position() == 0


async def test_broken_rule_is_409_and_appends_nothing(api: httpx.AsyncClient, container: Container) -> None:
    await api.post("/jobs", json=job_body(job_id="j1"))
    await assert_problem(await api.post("/jobs/j1/rounds", json=round_body(1, clients=("a",))), 409, "min_clients")
    await assert_problem(await api.post("/jobs/j1/rounds", json=round_body(9)), 409, "exceeds")
    await api.post("/jobs/j1/cancel", json={"reason": "stop"})
    await assert_problem(await api.post("/jobs/j1/cancel", json={"reason": "again"}), 409, "terminal")
    await assert_problem(await api.post("/jobs", json=job_body(job_id="j1")), 409, "already exists")
    assert await container.store.stream_version("job-j1") == 2


async def test_bad_query_parameters_are_422(api: httpx.AsyncClient) -> None:
    await assert_problem(await api.get("/events", params={"after": -1}), 422, "after")
    await assert_problem(await api.get("/jobs", params={"limit": "x"}), 422, "limit")
    await assert_problem(await api.get("/jobs", params={"status": "weird"}), 422, "status")


async def test_wrong_round_payload_types_are_422(api: httpx.AsyncClient, container: Container) -> None:
    await api.post("/jobs", json=job_body(job_id="j1"))
    r = await api.post("/jobs/j1/rounds", json={"round": 1, "results": [{"client_id": "a", "num_examples": "lots"}]})
    await assert_problem(r, 422, "num_examples")
    r = await api.post("/jobs/j1/rounds", json={"round": 1, "model_sha256": "not-a-hash"})
    await assert_problem(r, 422, "model_sha256")
    assert await container.store.stream_version("job-j1") == 1


@pytest.mark.parametrize(
    ("query", "reason"),
    [("limit=0", "query.limit"), ("limit=1001", "query.limit"), ("offset=-1", "query.offset"),
     ("offset=x", "query.offset"), ("status=nope", "query.status")],
)  # fmt: skip
async def test_the_job_board_names_the_bad_query_parameter(api: httpx.AsyncClient, query: str, reason: str) -> None:
    await assert_problem(await api.get(f"/jobs?{query}"), 422, reason)


async def test_the_job_board_pages_and_filters_by_its_query_parameters(api: httpx.AsyncClient) -> None:
    for i in range(3):
        assert (await api.post("/jobs", json=job_body(job_id=f"q{i}"))).status_code == 201
    page = (await api.get("/jobs?limit=2&offset=1&unknown=ignored")).json()
    assert (page["limit"], page["offset"], page["total"]) == (2, 1, 3)
    assert [item["job_id"] for item in page["items"]] == ["q1", "q2"]
    assert (await api.get("/jobs?status=running")).json()["total"] == 0
    assert (await api.get("/jobs?status=pending")).json()["total"] == 3
    documented = {
        p["name"]: p["in"] for p in (await api.get("/openapi.json")).json()["paths"]["/jobs"]["get"]["parameters"]
    }
    assert documented == {"status": "query", "limit": "query", "offset": "query"}
