"""The command headers (X-Correlation-ID, X-Causation-ID, traceparent, Idempotency-Key, If-Match)
are read by one plain dependency (api/deps.py), not FastAPI `Header` parameters: they must still
be validated (422 problem+json naming the header), applied, and documented in OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from flp.wiring import Container
from tests.conftest import job_body, round_body

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_context_headers_land_in_the_events_metadata(api: httpx.AsyncClient) -> None:
    headers = {"X-Correlation-ID": "corr-9", "x-causation-id": "cause-9", "Idempotency-Key": "k-9"}
    r = await api.post("/jobs", json=job_body(job_id="h1"), headers=headers)
    assert r.status_code == 201, r.text
    meta = r.json()["events"][0]["metadata"]
    assert meta["correlation_id"] == "corr-9" and meta["causation_id"] == "cause-9"
    again = await api.post("/jobs", json=job_body(job_id="h1"), headers=headers)
    assert again.status_code == 201 and again.json()["duplicate"] is True  # the key was applied


async def test_without_headers_the_command_id_is_correlation_and_causation(api: httpx.AsyncClient) -> None:
    r = await api.post("/jobs", json=job_body(job_id="h2"))
    meta = r.json()["events"][0]["metadata"]
    assert meta["correlation_id"] == meta["causation_id"] == meta["command_id"]
    assert "traceparent" not in meta


async def test_a_malformed_traceparent_is_ignored_a_wellformed_one_kept(api: httpx.AsyncClient) -> None:
    bad = await api.post("/jobs", json=job_body(job_id="h3"), headers={"traceparent": "not-a-traceparent"})
    assert bad.status_code == 201 and "traceparent" not in bad.json()["events"][0]["metadata"]
    good = await api.post("/jobs", json=job_body(job_id="h4"), headers={"traceparent": TRACEPARENT})
    assert good.json()["events"][0]["metadata"]["traceparent"] == TRACEPARENT


@pytest.mark.parametrize(
    ("headers", "where", "kind"),
    [
        ({"X-Correlation-ID": "c" * 201}, "header.x-correlation-id", "string_too_long"),
        ({"X-Causation-ID": "c" * 201}, "header.x-causation-id", "string_too_long"),
        ({"traceparent": "0" * 56}, "header.traceparent", "string_too_long"),
        ({"Idempotency-Key": ""}, "header.Idempotency-Key", "string_too_short"),
        ({"Idempotency-Key": "k" * 201}, "header.Idempotency-Key", "string_too_long"),
    ],
)
async def test_bad_context_headers_are_422_problems(
    api: httpx.AsyncClient, headers: dict[str, str], where: str, kind: str
) -> None:
    r = await api.post("/jobs", json=job_body(job_id="h5"), headers=headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["detail"].startswith(f"{where}: ") and problem["errors"][0]["type"] == kind
    assert (await api.get("/jobs/h5")).status_code == 404  # nothing was done


@pytest.mark.parametrize(("value", "kind"), [("abc", "int_parsing"), ("-1", "greater_than_equal"), ("1.5", "")])
async def test_a_bad_if_match_is_a_422_problem(api: httpx.AsyncClient, value: str, kind: str) -> None:
    await api.post("/jobs", json=job_body(job_id="h6"))
    r = await api.post("/jobs/h6/rounds", json=round_body(1), headers={"If-Match": value})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("header.If-Match: ")
    if kind:
        assert r.json()["errors"][0]["type"] == kind


async def test_if_match_is_the_expected_version(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json=job_body(job_id="h7"))
    stale = await api.post("/jobs/h7/cancel", json={"reason": "x"}, headers={"If-Match": "0"})
    assert stale.status_code == 409 and stale.json()["current_version"] == 1
    ok = await api.post("/jobs/h7/cancel", json={"reason": "x"}, headers={"If-Match": "1"})
    assert ok.status_code == 200, ok.text


async def test_if_match_is_ignored_where_the_route_takes_none(api: httpx.AsyncClient) -> None:
    await api.post("/jobs", json=job_body(job_id="h8"))
    r = await api.post("/jobs/h8/clients", json={"client_id": "a"}, headers={"If-Match": "abc"})
    assert r.status_code == 200, r.text


def _header_params(schema: dict[str, object], path: str, method: str = "post") -> list[str]:
    operation = schema["paths"][path][method]  # type: ignore[index]
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]


async def test_openapi_documents_the_headers_once(api: httpx.AsyncClient, container: Container) -> None:
    create_app(container, manage_lifespan=False)  # a second app: the routers are shared, no duplicates
    schema = (await api.get("/openapi.json")).json()
    context = ["x-correlation-id", "x-causation-id", "traceparent"]
    assert _header_params(schema, "/jobs") == ["Idempotency-Key", *context]
    assert _header_params(schema, "/jobs/{job_id}/rounds") == ["Idempotency-Key", "If-Match", *context]
    assert _header_params(schema, "/jobs/{job_id}/cancel") == ["Idempotency-Key", "If-Match", *context]
    assert _header_params(schema, "/clients") == ["Idempotency-Key", *context]
    assert _header_params(schema, "/fleet/nodes") == context
    assert _header_params(schema, "/jobs/{job_id}", "get") == []
    rounds = schema["paths"]["/jobs/{job_id}/rounds"]["post"]["parameters"]
    if_match = next(p for p in rounds if p["name"] == "If-Match")
    assert if_match["schema"] == {"type": "integer", "minimum": 0} and if_match["in"] == "header"
