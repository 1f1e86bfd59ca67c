"""SuperNodes as a device runs them: its own key pair, the federation's CA, TLS to the SuperLink."""

from __future__ import annotations

from pathlib import Path

from config.ports import free_port
from fl_runtime.engine import flower_env
from fl_runtime.processes import ManagedProcess


def device_supernode(
    root: Path, name: str, superlink: str, private_key: Path, ca_cert: Path, partition: int, partitions: int
) -> ManagedProcess:
    home = root / name / "home"
    home.mkdir(parents=True, exist_ok=True)
    argv = [
        "flower-supernode",
        "--superlink",
        superlink,
        "--root-certificates",
        str(ca_cert),
        "--auth-supernode-private-key",
        str(private_key),
        "--node-config",
        f"partition-id={partition} num-partitions={partitions}",
        "--port",
        str(free_port()),
        "--max-retries",
        "0",
    ]
    return ManagedProcess(f"device-{name}", argv, flower_env(home), root / name / "supernode.log", cwd=root / name)
