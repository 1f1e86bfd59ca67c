# ruff: noqa: E501
"""The event value space is enforced at the edge: a value that could not be stored and read back
(non-finite numbers, integers beyond ±(2**53-1), lone surrogates) is a 422 naming the field, and
nothing is appended; the data dir stays readable and the server starts on it again."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from config.settings import Settings
from flp.wiring import Container, build_container
from tests.auth.helpers import admin_headers
from tests.conftest import job_body

JSON = {"content-type": "application/json"}
ROUND_OK = '{"round": 1, "results": [{"client_id": "a", "num_examples": 10}, {"client_id": "b", "num_examples": 10}]'

# (path, raw JSON body, a part of the reason): bodies as text, since ordinary JSON encoders refuse
# to write most of these (a parser reading `1e999` gets infinity; `NaN` is accepted by Python's).
POISONED = [
    ("/jobs/j1/rounds", ROUND_OK + ', "duration_s": 1e999}', "duration_s"),
    ("/jobs/j1/rounds", ROUND_OK + ', "duration_s": Infinity}', "duration_s"),
    ("/jobs/j1/rounds", ROUND_OK + ', "central_metrics": {"accuracy": NaN}}', "central_metrics"),
    ("/jobs/j1/rounds", ROUND_OK + ', "train_metrics": {"loss": -Infinity}}', "train_metrics"),
    ("/jobs/j1/rounds", '{"round": 1, "results": [{"client_id": "a", "num_examples": 18446744073709551616}]}', "num_examples"),
    ("/jobs/j1/rounds", ROUND_OK + ', "sampled": 18446744073709551616}', "sampled"),
    ("/jobs/j1/rounds", ROUND_OK + ', "sampled": 9007199254740992}', "sampled"),
    ("/jobs/j1/rounds", ROUND_OK + ', "train_metrics": {"\\ud800": 1.0}}', "train_metrics"),
    ("/jobs/j1/cancel", '{"reason": "bad \\udc00 text"}', "reason"),
    ("/jobs/j1/complete", '{"final_metrics": {"accuracy": 1e400}}', "final_metrics"),
    ("/jobs/j1/fail", '{"reason": "x", "round": 1, "failures": [{"client_id": "a", "code": "c", "reason": "\\ud83d"}]}', "reason"),
    ("/jobs", '{"name": "n", "rounds": 1, "min_clients": 1, "runtime": "external", "hyperparameters": {"lr": NaN}}', "hyperparameters"),
    ("/jobs", '{"name": "n", "rounds": 1, "min_clients": 1, "runtime": "external", "hyperparameters": {"lr": Infinity}}', "hyperparameters"),
    ("/jobs", '{"name": "n", "rounds": 1, "min_clients": 1, "runtime": "external", "hyperparameters": {"n": 18446744073709551616}}', "hyperparameters"),
    ("/jobs", '{"name": "n", "rounds": 1, "min_clients": 1, "runtime": "external", "hyperparameters": {"s": "\\ud800"}}', "hyperparameters"),
    ("/jobs", '{"name": "\\ud800", "rounds": 1, "min_clients": 1, "runtime": "external"}', "name"),
    ("/jobs", '{"name": "n", "rounds": 1, "min_clients": 1, "runtime": "external", "dirichlet_alpha": NaN}', "dirichlet_alpha"),
    ("/clients", '{"client_id": "c1", "name": "n", "properties": {"os": "\\ud800"}}', "properties"),
    ("/clients", '{"client_id": "c1", "name": "n", "properties": {"\\udfff": "x"}}', "properties"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "field"), POISONED)
async def test_values_outside_the_value_space_are_422_and_append_nothing(
    api: httpx.AsyncClient, container: Container, path: str, body: str, field: str
) -> None:
    assert (await api.post("/jobs", json=job_body(job_id="j1"))).status_code == 201
    head = await container.store.head_position()
    r = await api.post(path, content=body.encode(), headers=JSON)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in r.json()["detail"], r.json()
    assert await container.store.head_position() == head
    # the job is still readable and commandable
    assert (await api.get("/jobs/j1/state")).status_code == 200
    assert (await api.post("/jobs/j1/cancel", json={"reason": "done"})).status_code == 200


async def test_edge_values_inside_the_space_are_accepted_and_read_back(
    api: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    big = 2**53 - 1
    body = job_body(job_id="edge", hyperparameters={"n": big, "neg": -big, "f": 1.5e308, "s": "é€😀", "b": True})
    assert (await api.post("/jobs", json=body)).status_code == 201
    r = await api.post(
        "/jobs/edge/rounds",
        json={
            "round": 1,
            "sampled": big,
            "results": [{"client_id": "a", "num_examples": big}, {"client_id": "b", "num_examples": 0}],
            "duration_s": 1e308,
            "central_metrics": {"😀": -1e-308},
        },
    )
    assert r.status_code == 200, r.text
    state = (await api.get("/jobs/edge/state")).json()["state"]
    assert state["config"]["hyperparameters"] == body["hyperparameters"]
    assert state["latest_metrics"] == {"😀": -1e-308}
    # a second server on the same data dir starts and reads it all back
    second = await build_container(settings, with_runtime=False)
    await second.start()
    try:
        app = create_app(second, manage_lifespan=False)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=admin_headers(settings)
        ) as again:
            assert (await again.get("/jobs/edge/state")).json()["state"] == state
            assert (await again.get("/health")).json()["status"] == "ok"
    finally:
        await second.stop()
