"""The owners file through a late failover: the Flower processes of whichever replica holds the
runtime stay findable, so a replica killed outright never leaves them running."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

from fl_runtime.engine import EngineConfig, FlowerEngine
from fl_runtime.processes import ManagedProcess


def _engine_with_a_process(data_dir: Path, name: str) -> tuple[FlowerEngine, ManagedProcess]:
    """An engine as `start()` leaves it: a process of its own, recorded in the owners file."""
    engine = FlowerEngine(EngineConfig(mode="deployment", data_dir=data_dir))
    engine.root.mkdir(parents=True, exist_ok=True)
    engine._stop_leftovers()
    proc = ManagedProcess(
        name, [sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ), engine.root / f"{name}.log"
    )
    engine.processes.append(proc)
    engine.owners.append(proc.owner)
    proc.start()
    engine._remember_owners()
    return engine, proc


def test_a_replica_stopping_late_leaves_the_new_owners_processes_findable(tmp_path: Path) -> None:
    a, a_proc = _engine_with_a_process(tmp_path, "superlink-a")
    b, b_proc = _engine_with_a_process(tmp_path, "superlink-b")  # took over: A's leftovers are killed
    assert a_proc.proc is not None and a_proc.proc.wait(timeout=20) is not None
    try:
        a.stop()  # A learns late that it lost the lease
        assert (b.root / "owners.json").exists()  # still B's list
        assert b_proc.running()

        # B is killed outright (its engine never stops); the next owner cleans up after it
        c = FlowerEngine(EngineConfig(mode="deployment", data_dir=tmp_path))
        c._stop_leftovers()
        assert b_proc.proc is not None
        b_proc.proc.wait(timeout=20)
        assert (
            not psutil.pid_exists(b_proc.proc.pid) or psutil.Process(b_proc.proc.pid).status() == psutil.STATUS_ZOMBIE
        )
    finally:
        b_proc.stop()

    b.stop()  # the owner itself stopping removes its list
    assert not (b.root / "owners.json").exists()
