"""Where flp's Flower app lives and which run-config keys it declares."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parent / "flower_app"


@lru_cache(maxsize=1)
def app_project() -> dict[str, Any]:
    with (APP_DIR / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def declared_run_config() -> dict[str, Any]:
    """The `[tool.flwr.app.config]` defaults: every key a run may override."""
    config: dict[str, Any] = app_project()["tool"]["flwr"]["app"]["config"]
    return dict(config)
