"""`make demo`'s job, as a user runs it: `flp demo` on a fresh data dir, nothing configured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.settings import Settings
from flp.demo import demo_settings


def test_the_demo_runs_on_the_deployment_engine_unless_told_otherwise() -> None:
    assert demo_settings(Settings()).flower_mode == "deployment"
    assert demo_settings(Settings(flower_mode="simulation")).flower_mode == "simulation"
    assert demo_settings(Settings(flower_mode="off")).flower_mode == "off"
    # a secured SuperLink takes registered devices only, and the job needs 3 SuperNodes
    assert demo_settings(Settings(flower_secure=True)).flower_mode == "simulation"
    assert demo_settings(Settings(flower_host="0.0.0.0")).flower_mode == "simulation"  # noqa: S104
    assert demo_settings(Settings(flower_supernodes=2)).flower_mode == "simulation"


def test_flp_demo_runs_the_main_job_end_to_end(tmp_path: Path) -> None:
    """As `make demo` runs it: nothing configured, so the data dir is `.flp` relative to where
    it runs (a relative path each Flower process, forked into its own directory, must not see)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLP_")}
    flp = Path(sys.executable).parent / "flp"
    out = subprocess.run([str(flp), "demo"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "(Flower runtime, deployment engine)" in out.stdout
    for round_ in range(1, 6):
        assert f"round {round_}/5: central_acc=" in out.stdout
    assert "final central accuracy: 0.9028" in out.stdout  # fixed seeds: the same on every run
    assert "watch it live: curl -N" in out.stdout and "dashboard: http://127.0.0.1:" in out.stdout
    logs = tmp_path / ".flp" / "flower" / "logs"
    assert sorted(p.name for p in logs.glob("supernode-*.log")) == [f"supernode-{i}.log" for i in range(3)]
    assert "Traceback" not in out.stderr and "crashed" not in out.stdout + out.stderr
