"""Running ansible/ from the tools virtualenv, against localhost (a device rooted in a temp prefix)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.deploy.tools import ROOT, tool

ANSIBLE = ROOT / "ansible"
APP_VENV = Path(sys.executable).parent.parent  # the app's venv: the ClientApp's pinned deps are in it


def local_inventory(path: Path, prefix: Path, ca_cert: Path, platform_url: str, superlink: str, **host: Any) -> Path:
    """One device, `localhost` over ansible_connection=local, installed under `prefix`, run as a
    process by the caller (service manager `none`), its venv the app's (pinned deps already there)."""
    device = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(tool("python")),
        "flp_supernode_root": str(prefix),
        "flp_supernode_service_manager": "none",
        "flp_supernode_venv": str(APP_VENV),
        "flp_supernode_python": str(APP_VENV / "bin" / "python"),
        "flp_supernode_name": "edge-1",
        "flp_supernode_partition_id": 0,
        "flp_supernode_num_partitions": 1,
        **host,
    }
    inventory = {
        "all": {
            "vars": {
                "flp_platform_url": platform_url,
                "flp_superlink_address": superlink,
                "flp_ca_cert_src": str(ca_cert),
            },
            "children": {"supernodes": {"hosts": {"localhost": device}}},
        }
    }
    path.write_text(json.dumps(inventory, indent=2))  # JSON is YAML: the yaml inventory plugin reads it
    return path


def playbook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    run_env["PATH"] = os.pathsep.join([str(tool("python").parent), run_env.get("PATH", "")])
    return subprocess.run(
        [str(tool("ansible-playbook")), *args],
        cwd=ANSIBLE,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of localhost (ok, changed, failed...)."""
    line = next(ln for ln in output.splitlines() if ln.startswith("localhost") and "changed=" in ln)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
