"""Prove a model from its history: real Flower jobs (the deployment engine with 3 SuperNodes, as
`make demo` runs them; FedAvg and FedAdam, 3 clients x 3 rounds) re-executed by
`flp audit replay`, and the tampering replay must catch.

Two real jobs for the whole module (module-scoped); each test reads them, and the tamper tests
put back what they changed."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
import torch
from click.testing import Result
from typer.testing import CliRunner

from api.auth.principal import Role
from flp.cli import app as cli
from persistence.chain import chain_hash
from persistence.encoding import canonical_json
from projections.contributions import ContributionLedger
from tests.auth.helpers import role_headers
from tests.fl_runtime.conftest import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

JOB = {"rounds": 3, "num_clients": 3, "min_clients": 3}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def jobs(demo_platform: Platform) -> AsyncIterator[dict[str, str]]:
    """strategy -> job id, both completed."""
    ids: dict[str, str] = {}
    for strategy in ("fedavg", "fedadam"):
        job_id = await demo_platform.start_job(**JOB, strategy=strategy)
        detail = await demo_platform.wait_terminal(job_id)
        assert detail["status"] == "completed", (detail.get("reason"), detail.get("status"))
        ids[strategy] = job_id
    yield ids


def auditor_env(platform: Platform) -> dict[str, str]:
    token = role_headers(platform.server.container.settings, Role.AUDITOR)["Authorization"].removeprefix("Bearer ")
    return {"FLP_API_URL": platform.server.url, "FLP_TOKEN": token}


async def flp(platform: Platform, *args: str) -> Result:
    """The real CLI against the running platform, as an auditor (in a thread: it runs its own loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=auditor_env(platform))


async def replay_json(platform: Platform, job_id: str) -> tuple[int, dict[str, Any]]:
    result = await flp(platform, "audit", "replay", job_id, "--json")
    return result.exit_code, json.loads(result.stdout)


def artifact_path(platform: Platform, sha: str) -> Path:
    return platform.server.container.settings.artifacts_dir / sha[:2] / sha


def updates_of(events: list[dict[str, Any]], rnd: int) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "ClientUpdateReceived" and e["data"]["round"] == rnd]


async def test_job_started_records_provenance_and_every_update_is_an_artifact(
    demo_platform: Platform, jobs: dict[str, str]
) -> None:
    for strategy, job_id in jobs.items():
        events = await demo_platform.events(job_id)
        started = next(e for e in events if e["type"] == "JobStarted")
        assert started["schema_version"] == 2
        prov = started["data"]["provenance"]
        assert prov["strategy"]["name"] == strategy
        assert prov["strategy"]["flower_class"] == {"fedavg": "FedAvg", "fedadam": "FedAdam"}[strategy]
        assert set(prov["versions"]) >= {"flwr", "torch", "numpy"} and prov["versions"]["flwr"] == "1.42.0"
        if strategy == "fedadam":
            assert {"eta", "eta_l", "beta_1", "beta_2", "tau"} <= set(prov["strategy"]["params"])
        assert artifact_path(demo_platform, prov["initial_model_sha256"]).is_file()
        for done in (e for e in events if e["type"] == "RoundCompleted"):
            assert done["schema_version"] == 2
            state_sha = done["data"]["strategy_state_sha256"]
            if strategy == "fedadam":  # the moments after the round, as an artifact
                state = torch.load(io.BytesIO(artifact_path(demo_platform, state_sha).read_bytes()), weights_only=True)
                assert {k.split("/")[0] for k in state} == {"m_t", "v_t"}
            else:
                assert state_sha is None
        for rnd in (1, 2, 3):
            updates = updates_of(events, rnd)
            assert len(updates) == 3
            for u in updates:
                assert u["schema_version"] == 2
                data = artifact_path(demo_platform, u["data"]["update_sha256"]).read_bytes()
                state = torch.load(io.BytesIO(data), weights_only=True)
                assert set(state) == {"layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"}
            assert abs(sum(u["data"]["weight"] for u in updates) - 1.0) <= 1e-12
            total = sum(u["data"]["num_examples"] for u in updates)
            assert all(u["data"]["weight"] == u["data"]["num_examples"] / total for u in updates)


async def test_replay_matches_every_round_for_fedavg_and_fedadam(demo_platform: Platform, jobs: dict[str, str]) -> None:
    for strategy, job_id in jobs.items():
        code, report = await replay_json(demo_platform, job_id)
        assert code == 0, report["rounds"]
        assert report["ok"] and report["re_executable"] and report["first_diverging_round"] is None
        assert [(r["round"], r["status"]) for r in report["rounds"]] == [(1, "match"), (2, "match"), (3, "match")]
        assert all(r["replayed_sha256"] == r["recorded_sha256"] for r in report["rounds"])
        assert strategy in report["strategy"]
    plain = await flp(demo_platform, "audit", "replay", jobs["fedadam"])
    assert plain.exit_code == 0
    assert plain.stdout.count(" match ") == 3 and "OK all 3 rounds" in plain.stdout


async def test_contribution_ledger_weights_sum_to_one_and_rebuild_equals_live(
    demo_platform: Platform, jobs: dict[str, str]
) -> None:
    container = demo_platform.server.container
    ledger_projection = ContributionLedger()
    for job_id in jobs.values():
        ledger = (await demo_platform.http.get(f"/jobs/{job_id}/contributions")).json()
        assert [r["round"] for r in ledger["rounds"]] == [1, 2, 3]
        for rnd in ledger["rounds"]:
            assert rnd["completed"] and len(rnd["updates"]) == 3 and rnd["failures"] == []
            assert abs(sum(u["weight"] for u in rnd["updates"]) - 1.0) <= 1e-12
            assert abs(rnd["weight_sum"] - 1.0) <= 1e-12
            for u in rnd["updates"]:
                assert u["update_norm"] > 0 and -1.0 <= u["cosine_to_aggregate"] <= 1.0
        assert {c["rounds"] for c in ledger["clients"].values()} == {3}
        # the job detail read model shows the same figures
        detail = (await demo_platform.http.get(f"/jobs/{job_id}")).json()
        assert [u["weight"] for u in detail["rounds"][0]["client_updates"]] == [
            u["weight"] for u in ledger["rounds"][0]["updates"]
        ]
        # rebuild: fold the stored events through the projection from nothing
        doc: dict[str, Any] | None = None
        for recorded in await container.store.read_stream(f"job-{job_id}"):
            event = recorded.to_event()
            if ledger_projection.keys(event):
                doc = ledger_projection.apply(doc, event, recorded)
        assert doc == await container.read_models.get("contributions", job_id)


PROV_SCHEMA = Path(__file__).parents[1] / "proof" / "prov-json-schema.json"


async def test_lineage_resolves_every_node_and_exports_valid_prov_json(
    demo_platform: Platform, jobs: dict[str, str], tmp_path: Path
) -> None:
    job_id = jobs["fedadam"]
    graph = (await demo_platform.http.get(f"/jobs/{job_id}/lineage")).json()
    events = {(e["stream_id"], e["version"]): e for e in await demo_platform.events(job_id)}
    kinds = [n["kind"] for n in graph["nodes"]]
    assert kinds.count("round") == 3 and kinds.count("client_update") == 9 and kinds.count("client") == 3
    assert {"config", "app_code", "model"} <= set(kinds)
    ids = {n["id"] for n in graph["nodes"]}
    for node in graph["nodes"]:
        assert node["refs"], node
        for ref in node["refs"]:
            if "artifact" in ref:
                got = await demo_platform.http.get(f"/artifacts/{ref['artifact']}")
                assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == ref["artifact"]
            else:
                ev = ref["event"]
                stored = events[(ev["stream_id"], ev["version"])]
                assert (stored["position"], stored["type"]) == (ev["position"], ev["type"])
    assert all(edge["from"] in ids and edge["to"] in ids for edge in graph["edges"])
    final = next(n for n in graph["nodes"] if n["id"] == f"final:{job_id}")
    detail = (await demo_platform.http.get(f"/jobs/{job_id}")).json()
    assert final["attributes"]["sha256"] == detail["model_sha256"]
    # the path final model -> round 3 -> its updates -> their clients
    edges = {(e["from"], e["rel"]): e["to"] for e in graph["edges"]}
    last_round_model = edges[(final["id"], "derived_from")]
    assert edges[(last_round_model, "generated_by")] == f"round:{job_id}:3"

    out = tmp_path / "prov.json"
    result = await flp(demo_platform, "audit", "lineage", job_id, "--format", "prov", "--out", str(out))
    assert result.exit_code == 0, result.output
    prov = json.loads(out.read_text())
    jsonschema.Draft4Validator(json.loads(PROV_SCHEMA.read_text())).validate(prov)
    declared = set(prov["entity"]) | set(prov["activity"]) | set(prov["agent"])
    for relation in ("wasGeneratedBy", "used", "wasAttributedTo", "wasAssociatedWith", "wasDerivedFrom"):
        for rel in prov[relation].values():
            assert all(v in declared for k, v in rel.items() if k.startswith("prov:")), rel
    assert len(prov["activity"]) == 3 and len(prov["wasAttributedTo"]) == 9
    bad = {**prov, "entity": {"flp:x": {"flp:sha256": None}}}
    assert not jsonschema.Draft4Validator(json.loads(PROV_SCHEMA.read_text())).is_valid(bad)


async def test_replay_is_for_auditors(demo_platform: Platform, jobs: dict[str, str]) -> None:
    settings = demo_platform.server.container.settings
    url = f"/jobs/{jobs['fedavg']}/replay"
    viewer = await demo_platform.http.get(url, headers=role_headers(settings, Role.VIEWER))
    assert viewer.status_code == 403
    auditor = await demo_platform.http.get(url, headers=role_headers(settings, Role.AUDITOR))
    assert auditor.status_code == 200 and auditor.json()["ok"] is True
    missing = await demo_platform.http.get("/jobs/no-such-job/replay", headers=role_headers(settings, Role.AUDITOR))
    assert missing.status_code == 404
    bad = await demo_platform.http.get("/jobs/bad%20id/replay", headers=role_headers(settings, Role.AUDITOR))
    assert bad.status_code == 422


@contextmanager
def rewritten(path: Path, data: bytes) -> Iterator[None]:
    original = path.read_bytes()
    path.write_bytes(data)
    try:
        yield
    finally:
        path.write_bytes(original)


async def test_a_rewritten_update_artifact_fails_replay_at_its_round(
    demo_platform: Platform, jobs: dict[str, str]
) -> None:
    job_id = jobs["fedavg"]
    events = await demo_platform.events(job_id)
    victim = updates_of(events, 2)[1]["data"]
    path = artifact_path(demo_platform, victim["update_sha256"])
    state = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)
    state["layers.0.bias"][0] += 0.5  # a plausible, loadable model: only the content changed
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with rewritten(path, buffer.getvalue()):
        code, report = await replay_json(demo_platform, job_id)
        plain = await flp(demo_platform, "audit", "replay", job_id)
    assert code == 1 and not report["ok"]
    assert report["first_diverging_round"] == 2
    statuses = [r["status"] for r in report["rounds"]]
    assert statuses[0] == "match" and statuses[1] == "diverged"
    round2 = report["rounds"][1]
    assert victim["client_id"] in round2["reason"] and "does not hash to its name" in round2["reason"]
    assert round2["max_abs_diff"] is not None and round2["max_abs_diff"] > 0
    assert plain.exit_code == 1 and "first diverging round 2" in plain.output
    code, _ = await replay_json(demo_platform, job_id)
    assert code == 0  # put back: the history proves the model again


def _rows(db: sqlite3.Connection, stream: str) -> list[dict[str, Any]]:
    cur = db.execute("SELECT * FROM events WHERE stream_id = ? ORDER BY version", (stream,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _rehash_from(db: sqlite3.Connection, stream: str, version: int) -> None:
    """An attacker with write access to the store recomputes the unkeyed chain after the edit."""
    prev = "0" * 64
    for r in _rows(db, stream):
        if r["version"] >= version:
            digest = chain_hash(
                prev, stream, r["version"], r["event_id"], r["type"], r["schema_version"],
                json.loads(r["data"]), json.loads(r["metadata"]),
            )  # fmt: skip
            db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE position = ?", (prev, digest, r["position"]))
            r["hash"] = digest
        prev = r["hash"]
    db.commit()


async def test_an_edited_weight_is_caught_by_verify_and_with_a_recomputed_chain_by_replay(
    demo_platform: Platform, jobs: dict[str, str]
) -> None:
    job_id = jobs["fedavg"]
    stream = f"job-{job_id}"
    db = sqlite3.connect(demo_platform.server.container.settings.data_dir / "flp.db")
    original = _rows(db, stream)
    try:
        target = next(
            r for r in original if r["type"] == "ClientUpdateReceived" and json.loads(r["data"])["round"] == 2
        )
        data = json.loads(target["data"])
        data["num_examples"] *= 3  # the weighting metric FedAvg aggregates with
        data["weight"] = 0.75
        db.execute("UPDATE events SET data = ? WHERE position = ?", (canonical_json(data), target["position"]))
        db.commit()
        verify = await flp(demo_platform, "audit", "verify", "--job", job_id, "--json")
        assert verify.exit_code == 1
        assert json.loads(verify.stdout)["first_break"]["position"] == target["position"]

        _rehash_from(db, stream, target["version"])  # every sha256 link holds again
        code, report = await replay_json(demo_platform, job_id)
        assert code == 1 and report["first_diverging_round"] == 2
        round2 = report["rounds"][1]
        assert round2["status"] == "diverged" and round2["replayed_sha256"] != round2["recorded_sha256"]
        assert "recorded weight 0.75" in round2["reason"] and "not the recorded one" in round2["reason"]
        assert round2["max_abs_diff"] > 0
    finally:
        for r in original:
            db.execute(
                "UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE position = ?",
                (r["data"], r["prev_hash"], r["hash"], r["position"]),
            )
        db.commit()
        db.close()
    code, _ = await replay_json(demo_platform, job_id)
    assert code == 0
