"""Tamper drills: edit the SQLite store directly, then `flp audit verify` must name the first
broken link (stream, version, position) and exit non-zero."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from adapters.sqlite_event_store import SqliteEventStore
from api.app import create_app
from audit.verify import verify_store
from config.settings import Settings
from flp.cli import app as cli
from flp.wiring import build_container
from persistence.chain import chain_hash
from persistence.encoding import canonical_json
from tests.auth.helpers import admin_headers
from tests.conftest import job_body, round_body

Row = dict[str, Any]


async def _populate(settings: Settings) -> None:
    container = await build_container(settings, with_runtime=False)
    await container.start()
    try:
        app = create_app(container, manage_lifespan=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=admin_headers(settings)) as h:
            for job in ("A", "B"):
                assert (await h.post("/jobs", json=job_body(job_id=job))).status_code == 201
            for job in ("A", "B"):
                for c in ("a", "b"):
                    assert (await h.post(f"/jobs/{job}/clients", json={"client_id": c})).status_code == 200
            for rnd in (1, 2):
                for job in ("A", "B"):
                    assert (await h.post(f"/jobs/{job}/rounds", json=round_body(rnd))).status_code == 200
    finally:
        await container.stop()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    asyncio.run(_populate(settings_for(tmp_path / "flp")))
    return tmp_path / "flp"


def settings_for(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir, flower_mode="off")


def rows(db: sqlite3.Connection) -> list[Row]:
    cur = db.execute("SELECT * FROM events ORDER BY position")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def stream_rows(db: sqlite3.Connection, stream: str) -> list[Row]:
    return [r for r in rows(db) if r["stream_id"] == stream]


def run_verify(data_dir: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--json", *args], env={"FLP_DATA_DIR": str(data_dir)})
    return result.exit_code, json.loads(result.stdout)


def chain_only(data_dir: Path) -> dict[str, Any]:
    """Verification without the seals: what an unkeyed hash chain alone can tell."""

    async def go() -> dict[str, Any]:
        store = await SqliteEventStore(data_dir / "flp.db").open()
        try:
            return (await verify_store(store)).to_dict()
        finally:
            await store.close()

    return asyncio.run(go())


def rehash_from(db: sqlite3.Connection, stream: str, version: int) -> None:
    """What an attacker with DB access does: recompute the unkeyed chain from `version` on."""
    prev = None
    for r in stream_rows(db, stream):
        if r["version"] < version:
            prev = r["hash"]
            continue
        digest = chain_hash(
            prev or "0" * 64,
            stream,
            r["version"],
            r["event_id"],
            r["type"],
            r["schema_version"],
            json.loads(r["data"]),
            json.loads(r["metadata"]),
        )
        db.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE position = ?", (prev or "0" * 64, digest, r["position"])
        )
        prev = digest
    db.commit()


def change_field(db: sqlite3.Connection) -> tuple[str, int, int]:
    target = stream_rows(db, "job-A")[-1]  # the last RoundCompleted-ish event of job A
    data = json.loads(target["data"])
    data["tampered"] = True
    db.execute("UPDATE events SET data = ? WHERE position = ?", (canonical_json(data), target["position"]))
    db.commit()
    return "job-A", target["version"], target["position"]


def change_actor(db: sqlite3.Connection) -> tuple[str, int, int]:
    target = stream_rows(db, "job-B")[1]
    meta = json.loads(target["metadata"])
    meta["actor"] = "someone-else"
    db.execute("UPDATE events SET metadata = ? WHERE position = ?", (canonical_json(meta), target["position"]))
    db.commit()
    return "job-B", target["version"], target["position"]


def delete_event(db: sqlite3.Connection) -> tuple[str, int, int]:
    a = stream_rows(db, "job-A")
    victim = a[2]
    db.execute("DELETE FROM events WHERE position = ?", (victim["position"],))
    db.commit()
    after = rows(db)[[r["position"] for r in rows(db)].index(victim["position"] + 1)]
    return after["stream_id"], after["version"], after["position"]


def swap_events(db: sqlite3.Connection) -> tuple[str, int, int]:
    a = stream_rows(db, "job-A")
    first, second = a[1], a[2]
    db.execute("UPDATE events SET position = -1 WHERE position = ?", (first["position"],))
    db.execute("UPDATE events SET position = ? WHERE position = ?", (first["position"], second["position"]))
    db.execute("UPDATE events SET position = ? WHERE position = -1", (second["position"],))
    db.commit()
    return "job-A", second["version"], first["position"]  # the later event now sits first


def insert_forged(db: sqlite3.Connection) -> tuple[str, int, int]:
    """A well-formed event with a correct unkeyed chain link, appended after the head."""
    last = stream_rows(db, "job-A")[-1]
    head = rows(db)[-1]["position"]
    data = json.loads(last["data"])
    meta = {**json.loads(last["metadata"]), "actor": "admin"}
    version, event_id = last["version"] + 1, "00000000-0000-4000-8000-000000000000"
    digest = chain_hash(last["hash"], "job-A", version, event_id, last["type"], last["schema_version"], data, meta)
    db.execute(
        "INSERT INTO events (position, stream_id, version, event_id, type, schema_version, data, metadata,"
        " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (head + 1, "job-A", version, event_id, last["type"], last["schema_version"], canonical_json(data),
         canonical_json(meta), last["hash"], digest),
    )  # fmt: skip
    db.commit()
    return "job-A", version, head + 1


def rewrite_and_rehash(db: sqlite3.Connection) -> tuple[str, int, int]:
    """Change a field and recompute the rest of the stream's chain so every sha256 link holds."""
    target = stream_rows(db, "job-B")[0]
    data = json.loads(target["data"])
    data["config"]["rounds"] = 99
    db.execute("UPDATE events SET data = ? WHERE position = ?", (canonical_json(data), target["position"]))
    rehash_from(db, "job-B", target["version"])
    return "job-B", target["version"], target["position"]


def truncate_newest(db: sqlite3.Connection) -> tuple[str, int, int]:
    newest = rows(db)[-1]
    db.execute("DELETE FROM events WHERE position = ?", (newest["position"],))
    db.commit()
    return newest["stream_id"], newest["version"], newest["position"]


DRILLS: dict[str, tuple[Callable[[sqlite3.Connection], tuple[str, int, int]], bool]] = {
    # name: (tamper, does the unkeyed chain alone catch it?)
    "change-a-field": (change_field, True),
    "change-the-actor": (change_actor, True),
    "delete-an-event": (delete_event, True),
    "swap-two-events": (swap_events, True),
    "insert-a-forged-event": (insert_forged, False),
    "rewrite-and-recompute-the-chain": (rewrite_and_rehash, False),
    "delete-the-newest-event": (truncate_newest, False),
}


def test_untouched_store_verifies(data_dir: Path) -> None:
    code, report = run_verify(data_dir)
    assert code == 0, report
    assert report["ok"] and report["sealed_checked"] and report["streams"] == 2 and report["first_break"] is None
    assert report["events_checked"] == report["head_position"] > 10


@pytest.mark.parametrize("drill", list(DRILLS))
def test_tamper_drill_is_detected_with_the_first_broken_link(data_dir: Path, drill: str) -> None:
    tamper, chain_catches_it = DRILLS[drill]
    with sqlite3.connect(data_dir / "flp.db") as db:
        stream, version, position = tamper(db)
    code, report = run_verify(data_dir)
    assert code == 1
    assert not report["ok"]
    brk = report["first_break"]
    assert (brk["stream_id"], brk["version"], brk["position"]) == (stream, version, position), brk["reason"]
    assert chain_only(data_dir)["ok"] is (not chain_catches_it)  # what the keyed seal adds


def test_job_scoped_verify(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "flp.db") as db:
        stream, version, position = change_field(db)
    code, report = run_verify(data_dir, "--job", "A")
    assert code == 1 and report["first_break"]["position"] == position
    code, report = run_verify(data_dir, "--job", "B")
    assert code == 0 and report["ok"]


def test_a_deleted_seal_is_reported(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "audit-seals.db") as seals:
        seals.execute("DELETE FROM seals WHERE position = 3")
    code, report = run_verify(data_dir)
    assert code == 1 and report["first_break"]["position"] == 3
    assert "no seal" in report["first_break"]["reason"]


def test_plain_output_names_the_broken_link(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "flp.db") as db:
        stream, version, position = change_field(db)
    result = CliRunner().invoke(cli, ["audit", "verify"], env={"FLP_DATA_DIR": str(data_dir), "COLUMNS": "250"})
    assert result.exit_code == 1
    assert f"stream {stream} version {version} position {position}" in result.output


def test_unsealed_history_can_be_adopted_only_when_its_chain_holds(data_dir: Path) -> None:
    (data_dir / "audit-seals.db").unlink()  # as if written before sealing existed
    for suffix in ("-wal", "-shm"):
        (data_dir / f"audit-seals.db{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(data_dir / "flp.db") as db:
        db.execute("UPDATE events SET seal = NULL")
    code, report = run_verify(data_dir)
    assert code == 1 and report["first_break"]["code"] == "unsealed" and report["first_break"]["position"] == 1
    refused = CliRunner().invoke(cli, ["audit", "adopt-unsealed"], env={"FLP_DATA_DIR": str(data_dir)})
    assert refused.exit_code == 2
    with sqlite3.connect(data_dir / "flp.db") as db:
        original = rows(db)[3]
        change_field_at(db, original["position"])
    broken = CliRunner().invoke(cli, ["audit", "adopt-unsealed", "--yes"], env={"FLP_DATA_DIR": str(data_dir)})
    assert broken.exit_code == 1 and "nothing sealed" in broken.output
    with sqlite3.connect(data_dir / "flp.db") as db:
        db.execute("UPDATE events SET data = ? WHERE position = ?", (original["data"], original["position"]))
    adopted = CliRunner().invoke(cli, ["audit", "adopt-unsealed", "--yes"], env={"FLP_DATA_DIR": str(data_dir)})
    assert adopted.exit_code == 0, adopted.output
    code, report = run_verify(data_dir)
    assert code == 0 and report["ok"] and report["sealed_checked"]


def change_field_at(db: sqlite3.Connection, position: int) -> None:
    data = json.loads(db.execute("SELECT data FROM events WHERE position = ?", (position,)).fetchone()[0])
    data["tampered"] = True
    db.execute("UPDATE events SET data = ? WHERE position = ?", (canonical_json(data), position))
    db.commit()
