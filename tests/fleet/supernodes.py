"""SuperNodes as a device runs them (the `flp_supernode` role's start script): its own key pair,
the federation's CA, TLS to the SuperLink; `fast_node supernode --isolation process` with its
long-lived ClientApp executor beside it, in one session (stopped together)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from config.ports import free_port
from fl_runtime.engine import flower_env
from fl_runtime.processes import ManagedProcess


def device_supernode(
    root: Path, name: str, superlink: str, private_key: Path, ca_cert: Path, partition: int, partitions: int
) -> ManagedProcess:
    home = root / name / "home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    wake = f"flp-test-device-{name}-{port}"
    python = [sys.executable, "-m", "fl_runtime.fast_node"]
    executor = [*python, "executor", "--runtime-api-address", f"127.0.0.1:{port}", "--wake", wake]
    supernode = [
        *python,
        "supernode",
        "--wake",
        wake,
        "--isolation",
        "process",
        "--host",
        "127.0.0.1",
        "--superlink",
        superlink,
        "--root-certificates",
        str(ca_cert),
        "--auth-supernode-private-key",
        str(private_key),
        "--node-config",
        f"partition-id={partition} num-partitions={partitions}",
        "--port",
        str(port),
        "--max-retries",
        "0",
    ]
    script = f"{shlex.join(executor)} & exec {shlex.join(supernode)}"  # as flp-supernode.sh.j2
    return ManagedProcess(
        f"device-{name}", ["sh", "-c", script], flower_env(home), root / name / "supernode.log", cwd=root / name
    )
