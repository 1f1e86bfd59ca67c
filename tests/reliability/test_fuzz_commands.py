"""Property test through the real HTTP API: every command body, valid except for at most one value
a careless or hostile client sends (non-finite numbers, `1e999`, huge integers, deep nesting, long
and invalid Unicode, in a value or a key). Each answer is a 2xx or a 4xx with a reason, never a
5xx; after each accepted command the job's stream replays, and every read model rebuilt from the
log equals the live one."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.helpers import admin_headers
from tests.live_server import LiveServer, rebuilt_and_live

OVERFLOW = "<<1e999>>"  # replaced by the literal 1e999 in the text sent (parsers read it as infinity)
LONE = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"])
nasty_text = st.one_of(
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=4), LONE, st.text(max_size=4)),
    st.integers(2001, 200_100).map(lambda n: "é" * n),
    st.text(max_size=20),
)


def deep(levels: int) -> Any:
    out: Any = 1
    for _ in range(levels):
        out = [out]
    return out


nasty = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), OVERFLOW]),
    st.sampled_from([2**53 - 1, 2**53, -(2**53), 2**63, 2**64, -(2**64), 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    nasty_text,
    st.booleans(),
    st.none(),
    st.sampled_from([deep(40), {"a": {"b": [1, {"c": None}]}}, [], {}]),
)

metrics = st.dictionaries(st.sampled_from(["loss", "accuracy", "f1"]), st.floats(0, 1), max_size=3)
clients = st.sampled_from(["a", "b", "c"])
start = st.fixed_dictionaries(
    {"job_id": st.sampled_from(["n1", "n2", "n3"]), "name": st.just("fuzz"), "rounds": st.integers(1, 3),
     "min_clients": st.just(1), "num_clients": st.just(3), "runtime": st.just("external"),
     "hyperparameters": st.dictionaries(st.sampled_from(["lr", "mu", "epochs"]), st.floats(0, 1), max_size=3)},
    optional={"dirichlet_alpha": st.floats(0.1, 2), "seed": st.integers(0, 10)},
)  # fmt: skip
round_report = st.fixed_dictionaries(
    {"round": st.integers(1, 2),
     "results": st.lists(st.fixed_dictionaries({"client_id": clients, "num_examples": st.integers(0, 100),
                                                 "metrics": metrics}), min_size=1, max_size=3,
                         unique_by=lambda r: r["client_id"])},
    optional={"duration_s": st.floats(0, 10), "train_metrics": metrics, "central_metrics": metrics,
              "evaluate_metrics": metrics, "model_sha256": st.just("ab" * 32)},
)  # fmt: skip
commands = st.one_of(
    st.tuples(st.just("/jobs"), start),
    st.tuples(st.just("/jobs/{job}/rounds"), round_report),
    st.tuples(st.just("/jobs/{job}/clients"), st.fixed_dictionaries({"client_id": clients})),
    st.tuples(st.just("/jobs/{job}/cancel"), st.fixed_dictionaries({"reason": st.text(max_size=10)})),
    st.tuples(st.just("/jobs/{job}/complete"), st.fixed_dictionaries({"final_metrics": metrics})),
    st.tuples(st.just("/jobs/{job}/start"), st.fixed_dictionaries({"run_id": st.just("r1")})),
    st.tuples(
        st.just("/jobs/{job}/fail"),
        st.fixed_dictionaries(
            {"reason": st.just("broke")},
            optional={"round": st.just(1), "failures": st.just([{"client_id": "a", "code": "x", "reason": "y"}])},
        ),
    ),
    st.tuples(
        st.just("/clients"),
        st.fixed_dictionaries(
            {
                "client_id": clients,
                "name": st.just("dev"),
                "properties": st.dictionaries(st.text(max_size=5), st.text()),
            }
        ),
    ),
)


def places(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], bool]]:
    """Every value of the body (path, False) and every mapping key (path, True)."""
    if isinstance(body, dict):
        for k, v in body.items():
            yield (*path, k), True
            yield from places(v, (*path, k))
    elif isinstance(body, list):
        for i, v in enumerate(body):
            yield from places(v, (*path, i))
    if path:
        yield path, False


def poisoned(body: Any, where: tuple[Any, ...], is_key: bool, bad: Any) -> Any:
    if not where:
        return body
    head, rest = where[0], where[1:]
    if isinstance(body, dict):
        if not rest and is_key:
            key = bad if isinstance(bad, str) else str(bad)
            return {(key if k == head else k): v for k, v in body.items()}
        return {k: (poisoned(v, rest, is_key, bad) if k == head else v) for k, v in body.items()} | (
            {head: bad} if not rest and not is_key else {}
        )
    out = list(body)
    out[head] = bad if not rest else poisoned(out[head], rest, is_key, bad)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("fuzz-commands") / "flp") as live:
        yield live


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=admin_headers(server.settings), timeout=30) as client:
        yield client


JOB_IDS = itertools.count()


def send(http: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST one command (to a job of its own): a 2xx, or a 4xx problem with a reason; the streams
    it touched still replay."""
    job_id = f"x{next(JOB_IDS)}"
    if isinstance(body, dict) and body.get("job_id") == "{job}":
        body = {**body, "job_id": job_id}
    elif "{job}" in path:
        target = {"job_id": job_id, "name": "t", "rounds": 50, "min_clients": 1, "runtime": "external"}
        assert http.post("/jobs", json=target).status_code == 201
        path = path.format(job=job_id)
    raw = json.dumps(body, allow_nan=True).replace(json.dumps(OVERFLOW), "1e999")  # NaN, \\udXXX, 1e999 as is
    r = http.post(path, content=raw.encode(), headers={"content-type": "application/json"})
    assert r.status_code < 500, (path, raw[:500], r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        assert r.json()["detail"], r.text
    elif r.json()["stream_id"].startswith("job-"):
        state = http.get(f"/jobs/{r.json()['stream_id'].removeprefix('job-')}/state")
        assert state.status_code == 200, state.text  # the stream replays
    return r


def assert_log_readable(server: LiveServer, http: httpx.Client, scratch: Path) -> None:
    """Nothing faulted, and every read model rebuilt from the log equals the live one."""
    assert http.get("/health").json()["status"] == "ok"
    rebuilt, live = asyncio.run(rebuilt_and_live(Path(server.settings.data_dir), scratch))
    assert rebuilt == live


# A full valid body per command (every optional field present), for poisoning one spot at a time.
TEMPLATES: dict[str, tuple[str, Any]] = {
    "start": ("/jobs", {"job_id": "{job}", "name": "n", "rounds": 2, "min_clients": 1, "num_clients": 3,
                        "runtime": "external", "dirichlet_alpha": 0.5, "seed": 3,
                        "hyperparameters": {"lr": 0.1, "epochs": 2, "opt": "sgd", "nesterov": True}}),
    "round": ("/jobs/{job}/rounds", {"round": 1, "sampled": 3, "duration_s": 1.5, "model_sha256": "ab" * 32,
                                     "results": [{"client_id": "a", "num_examples": 10, "metrics": {"loss": 0.5}}],
                                     "failures": [{"client_id": "b", "code": "crash", "reason": "oom"}],
                                     "train_metrics": {"loss": 0.5}, "evaluate_metrics": {"accuracy": 0.5},
                                     "central_metrics": {"accuracy": 0.9}}),
    "join": ("/jobs/{job}/clients", {"client_id": "a"}),
    "cancel": ("/jobs/{job}/cancel", {"reason": "enough"}),
    "complete": ("/jobs/{job}/complete", {"final_metrics": {"accuracy": 0.9}, "model_sha256": "cd" * 32}),
    "start-run": ("/jobs/{job}/start", {"run_id": "r1"}),
    "fail": ("/jobs/{job}/fail", {"reason": "broke", "round": 1,
                                  "failures": [{"client_id": "a", "code": "x", "reason": "y"}]}),
    "register": ("/clients", {"client_id": "dev-1", "name": "dev", "properties": {"os": "linux"}}),
}  # fmt: skip
SPOTS = [(name, where, is_key) for name, (_, body) in TEMPLATES.items() for where, is_key in places(body)]
CLASSIC = [float("nan"), float("inf"), float("-inf"), OVERFLOW, 2**53, 2**64, -(2**63) - 1, "a\ud800b",
           "\udfff", "é" * 200_001, deep(40), {"x": [float("inf")]}]  # fmt: skip


def spot_id(spot: tuple[str, tuple[Any, ...], bool]) -> str:
    name, where, is_key = spot
    return f"{name}:{'.'.join(map(str, where))}{'(key)' if is_key else ''}"


@pytest.mark.parametrize(("name", "where", "is_key"), SPOTS, ids=[spot_id(s) for s in SPOTS])
def test_one_bad_value_anywhere_is_refused_or_stored_readably(
    server: LiveServer, http: httpx.Client, tmp_path: Path, name: str, where: tuple[Any, ...], is_key: bool
) -> None:
    path, body = TEMPLATES[name]
    assert send(http, path, body).status_code < 300  # the template itself is valid
    accepted = 0
    for bad in CLASSIC:
        if is_key and not isinstance(bad, str):
            continue
        accepted += send(http, path, poisoned(body, where, is_key, bad)).status_code < 300
    if accepted:
        assert_log_readable(server, http, tmp_path / "rm.db")


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(command=commands, data=st.data())
def test_generated_bodies_with_a_random_bad_value_are_answered(
    http: httpx.Client, command: tuple[str, Any], data: st.DataObject
) -> None:
    path, body = command
    spots = list(places(body))
    poison: bool = data.draw(st.booleans(), label="poison?")
    if spots and poison:
        where, is_key = data.draw(st.sampled_from(spots), label="where")
        body = poisoned(body, where, is_key, data.draw(nasty_text if is_key else nasty, label="bad value"))
    send(http, path, body)


def test_after_the_fuzzing_the_log_rebuilds_equal_to_live(
    server: LiveServer, http: httpx.Client, tmp_path: Path
) -> None:
    assert_log_readable(server, http, tmp_path / "rm.db")
