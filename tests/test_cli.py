"""The `flp` CLI as a user runs it: a real process against a data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLP = [sys.executable, "-m", "flp"]


def flp(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "FLP_API_URL"}
    full_env.update({"FLP_DATA_DIR": str(data_dir), "FLP_FLOWER_MODE": "off", **(env or {})})
    return subprocess.run([*FLP, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_job_commands_round_trip(tmp_path: Path) -> None:
    started = flp(tmp_path, "job", "start", "--job-id", "cli1", "--rounds", "2", "--runtime", "external", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["events"][0]["type"] == "JobCreated"

    listed = flp(tmp_path, "job", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["job_id"] for j in json.loads(listed.stdout)["items"]] == ["cli1"]

    cancelled = flp(tmp_path, "job", "cancel", "cli1", "--reason", "testing")
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout

    shown = json.loads(flp(tmp_path, "job", "show", "cli1", "--json").stdout)
    assert shown["status"] == "cancelled" and shown["reason"] == "testing"

    history = json.loads(flp(tmp_path, "job", "history", "cli1", "--json").stdout)
    assert [e["type"] for e in history] == ["JobCreated", "JobCancelled"]

    state = json.loads(flp(tmp_path, "job", "state", "cli1", "--version", "1", "--json").stdout)
    assert state["state"]["status"] == "pending"

    tail = flp(tmp_path, "events", "tail", "--json")
    assert [json.loads(line)["position"] for line in tail.stdout.splitlines()] == [1, 2]

    rebuilt = flp(tmp_path, "projections", "rebuild", "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout) == {
        "position": 2,
        "documents": {"job_board": 1, "job_detail": 1, "client_fleet": 0, "contributions": 1},
    }


def test_bad_input_is_a_message_and_nonzero_exit(tmp_path: Path) -> None:
    bad = flp(tmp_path, "job", "start", "--rounds", "2", "--min-clients", "5", "--num-clients", "2")
    assert bad.returncode == 1
    assert "min_clients" in bad.stderr and "Traceback" not in bad.stderr
    missing = flp(tmp_path, "job", "show", "ghost")
    assert missing.returncode == 1 and "404" in missing.stderr and "Traceback" not in missing.stderr
    unknown = flp(tmp_path, "projections", "rebuild", "nope")
    assert unknown.returncode == 1 and "unknown projection" in unknown.stderr
    param = flp(tmp_path, "job", "start", "--param", "novalue")
    assert param.returncode != 0 and "KEY=VALUE" in param.stderr


def test_unreachable_server_is_a_message(tmp_path: Path) -> None:
    r = flp(tmp_path, "job", "list", env={"FLP_API_URL": "http://127.0.0.1:9"})
    assert r.returncode == 2 and "cannot reach flp" in r.stderr and "Traceback" not in r.stderr
