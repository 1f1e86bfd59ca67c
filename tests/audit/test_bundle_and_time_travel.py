"""Audit bundles (export over the API and CLI, offline verification), time travel by timestamp,
and diffs between versions."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from api.auth.principal import Role
from audit.bundles import verify_bundle
from audit.time_travel import diff_states, parse_timestamp
from config.secrets import seal_key_file
from config.settings import Settings
from flp.cli import app as cli
from flp.wiring import Container
from persistence.encoding import canonical_json
from tests.auth.helpers import role_headers
from tests.conftest import job_body, round_body


async def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """The CLI in a worker thread (it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env or {})


async def run_job(api: httpx.AsyncClient, job: str = "J") -> None:
    assert (await api.post("/jobs", json=job_body(job_id=job, rounds=2))).status_code == 201
    for c in ("a", "b"):
        assert (await api.post(f"/jobs/{job}/clients", json={"client_id": c})).status_code == 200
    for rnd in (1, 2):
        assert (await api.post(f"/jobs/{job}/rounds", json=round_body(rnd))).status_code == 200
    assert (await api.post(f"/jobs/{job}/complete", json={"final_metrics": {"accuracy": 0.9}})).status_code == 200


async def bundle(api: httpx.AsyncClient, settings: Settings, job: str = "J") -> list[str]:
    r = await api.get(f"/jobs/{job}/audit", headers=role_headers(settings, Role.AUDITOR, subject="svc:auditor"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = r.text.splitlines()
    assert json.loads(lines[-1])["kind"] == "signature"  # checked in tests/proof/test_signed_bundles.py
    return lines[:-1]


def redigest(lines: list[str]) -> list[str]:
    """What a careful forger does after editing: recompute the bundle's (unkeyed) digest."""
    body = lines[:-1]
    return [*body, canonical_json({"kind": "digest", "sha256": hashlib.sha256("\n".join(body).encode()).hexdigest()})]


async def test_bundle_round_trip(api: httpx.AsyncClient, container: Container, settings: Settings) -> None:
    await run_job(api)
    lines = await bundle(api, settings)
    docs = [json.loads(x) for x in lines]
    assert [d["kind"] for d in docs[:1] + docs[-3:]] == ["header", "chain_head", "state", "digest"]
    events = await container.store.read_stream("job-J")
    assert docs[0]["events"] == len(events) and docs[0]["exported_by"] == "svc:auditor"
    assert [d["event"]["event_id"] for d in docs[1:-3]] == [e.event_id for e in events]
    assert all(d["event"]["metadata"]["actor"] == "admin" for d in docs[1:-3])
    assert docs[-3]["hash"] == events[-1].hash and docs[-3]["version"] == events[-1].version
    assert docs[-2]["state"]["status"] == "completed"
    report = verify_bundle(lines)
    assert report.ok, report.problems
    assert report.events == len(events) and not report.seals_checked
    key = seal_key_file(settings).read_bytes().strip()
    keyed = verify_bundle(lines, key)
    assert keyed.ok and keyed.seals_checked


@pytest.mark.parametrize("tamper", ["edit-event", "drop-event", "edit-state", "swap-events", "truncate"])
async def test_tampered_bundles_fail(api: httpx.AsyncClient, settings: Settings, tamper: str) -> None:
    await run_job(api)
    lines = await bundle(api, settings)
    docs = [json.loads(x) for x in lines]
    if tamper == "edit-event":
        docs[3]["event"]["data"]["client_id"] = "mallory"
    elif tamper == "drop-event":
        del docs[2]
        docs[0]["events"] -= 1
    elif tamper == "edit-state":
        docs[-2]["state"]["final_metrics"] = {"accuracy": 0.99}
    elif tamper == "swap-events":
        docs[2], docs[3] = docs[3], docs[2]
    forged = lines[:-2] if tamper == "truncate" else redigest([canonical_json(d) for d in docs])
    report = verify_bundle(forged)
    assert not report.ok and report.problems
    if tamper in ("edit-event", "drop-event", "swap-events"):
        assert report.first_break is not None


async def test_a_recomputed_bundle_fails_only_with_the_seal_key(api: httpx.AsyncClient, settings: Settings) -> None:
    """Forge a whole bundle (chain recomputed, digest recomputed): the chain alone cannot tell,
    the seals (HMAC under the platform's key) can."""
    await run_job(api)
    docs = [json.loads(x) for x in await bundle(api, settings)]
    from persistence.chain import expected_hash
    from persistence.records import RecordedEvent

    prev = "0" * 64
    for d in docs[1:-3]:
        e = d["event"]
        if e["type"] == "JobCompleted":
            e["data"]["final_metrics"] = {"accuracy": 0.99}
        e["prev_hash"] = prev
        e["hash"] = expected_hash(RecordedEvent.from_dict(e))
        prev = e["hash"]
    docs[-3]["hash"] = prev
    docs[-2]["state"]["final_metrics"] = {"accuracy": 0.99}
    forged = redigest([canonical_json(d) for d in docs])
    assert verify_bundle(forged).ok  # self-consistent
    keyed = verify_bundle(forged, seal_key_file(settings).read_bytes().strip())
    assert not keyed.ok and any("HMAC" in p for p in keyed.problems)


async def test_unknown_job_bundle_is_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/jobs/nope/audit")).status_code == 404


async def test_cli_export_and_offline_verify(api: httpx.AsyncClient, settings: Settings, tmp_path: Path) -> None:
    await run_job(api)
    env = {"FLP_DATA_DIR": str(settings.data_dir), "FLP_FLOWER_MODE": "off", "COLUMNS": "200"}
    out = tmp_path / "J.ndjson"
    exported = await invoke("audit", "export", "J", "--out", str(out), env=env)
    assert exported.exit_code == 0, exported.output
    ok = await invoke("audit", "verify-bundle", str(out), "--json", env={})
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"]
    keyed = await invoke("audit", "verify-bundle", str(out), "--seal-key-file", str(seal_key_file(settings)), env=env)
    assert keyed.exit_code == 0 and "seals and HMAC verified" in keyed.output
    out.write_text(out.read_text().replace('"client_id":"a"', '"client_id":"z"', 1))
    broken = await invoke("audit", "verify-bundle", str(out), env={"COLUMNS": "200"})
    assert broken.exit_code == 1 and "BROKEN" in broken.output


async def test_state_as_of_a_timestamp(api: httpx.AsyncClient, container: Container, settings: Settings) -> None:
    await run_job(api)
    events = await container.store.read_stream("job-J")
    auditor = role_headers(settings, Role.AUDITOR)
    third = parse_timestamp(events[2].recorded_at)
    r = await api.get("/jobs/J/as-of", params={"timestamp": events[2].recorded_at}, headers=auditor)
    assert r.status_code == 200
    body = r.json()
    expected_version = max(e.version for e in events if parse_timestamp(e.recorded_at) <= third)
    assert body["version"] == expected_version and body["state"]["clients"] == ["a", "b"][: expected_version - 1]
    naive = (third + timedelta(hours=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    later = await api.get("/jobs/J/as-of", params={"timestamp": naive}, headers=auditor)
    assert later.json()["version"] == events[-1].version and later.json()["state"]["status"] == "completed"
    before = (parse_timestamp(events[0].recorded_at) - timedelta(seconds=1)).isoformat()
    assert (await api.get("/jobs/J/as-of", params={"timestamp": before}, headers=auditor)).status_code == 404
    bad = await api.get("/jobs/J/as-of", params={"timestamp": "yesterday"}, headers=auditor)
    assert bad.status_code == 422


async def test_diff_between_versions(api: httpx.AsyncClient, container: Container, settings: Settings) -> None:
    await run_job(api)
    auditor = role_headers(settings, Role.AUDITOR)
    r = await api.get("/jobs/J/diff", params={"from_version": 1, "to_version": 3}, headers=auditor)
    assert r.status_code == 200
    diff = r.json()
    assert (diff["from_version"], diff["to_version"]) == (1, 3)
    assert [e["type"] for e in diff["events"]] == ["ClientJoined", "ClientJoined"]
    changes = {c["path"]: c for c in diff["changes"]}
    assert changes["/clients/0"] == {"path": "/clients/0", "op": "added", "before": None, "after": "a"}
    assert changes["/version"]["before"] == 1 and changes["/version"]["after"] == 3
    whole = (await api.get("/jobs/J/diff", headers=auditor)).json()
    assert whole["from_version"] == 0 and whole["to_version"] == len(await container.store.read_stream("job-J"))
    assert {"path": "/status", "op": "changed", "before": None, "after": "completed"} in whole["changes"]


async def test_cli_time_travel(api: httpx.AsyncClient, settings: Settings) -> None:
    await run_job(api)
    env = {"FLP_DATA_DIR": str(settings.data_dir), "FLP_FLOWER_MODE": "off"}
    diff = await invoke("job", "diff", "J", "--from", "1", "--to", "2", "--json", env=env)
    assert diff.exit_code == 0, diff.output
    assert json.loads(diff.stdout)["events"][0]["type"] == "ClientJoined"
    future = (datetime.now() + timedelta(days=1)).isoformat()
    as_of = await invoke("job", "as-of", "J", "--at", future, "--json", env=env)
    assert as_of.exit_code == 0 and json.loads(as_of.stdout)["state"]["status"] == "completed"


def test_diff_states_is_a_json_pointer_diff() -> None:
    before = {"a": 1, "b": {"c": [1, 2]}, "gone": True, "x/y": 0}
    after = {"a": 2, "b": {"c": [1, 3, 4]}, "new": None, "x/y": 0}
    assert diff_states(before, after) == [
        {"path": "/a", "op": "changed", "before": 1, "after": 2},
        {"path": "/b/c/1", "op": "changed", "before": 2, "after": 3},
        {"path": "/b/c/2", "op": "added", "before": None, "after": 4},
        {"path": "/gone", "op": "removed", "before": True, "after": None},
        {"path": "/new", "op": "added", "before": None, "after": None},
    ]
    assert diff_states(before, before) == []
    assert diff_states(1, 1.0) == [{"path": "/", "op": "changed", "before": 1, "after": 1.0}]
