"""The deployment tools' own virtualenv (scripts/setup-tools.sh, run by `make test`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv-tools" / "bin"


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup-tools.sh (make test does)")
    return path


def compose_config(*files: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The Compose binary's own validation (unknown keys, wrong types, missing services...) and
    the normalized model it resolves the files to."""
    args = [str(tool("docker-compose"))]
    for f in files:
        args += ["-f", str(f)]
    result = subprocess.run(
        [*args, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model
