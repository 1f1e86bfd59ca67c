"""What the platform records in `JobStarted` so that an auditor can re-execute the aggregation:
the initial model's hash (the ServerApp builds the same model from the seed and uploads it before
round 1; replay finds it by that hash, and a different start would fail round 1), the Flower
strategy class and its parameters (computed by the Flower app's own `strategy_params`, the
function `build_strategy` uses), the app directory's hash and the library versions.

The versions are the platform's environment, which is the ServerApp's in the simulation and
deployment modes (the platform starts the SuperLink from its own environment); in `remote` mode
the SuperLink's environment may differ.
"""

from __future__ import annotations

import hashlib
import importlib
import platform
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from domain.provenance import JobProvenance, StrategySpec
from fl_runtime.app_dir import APP_DIR
from fl_runtime.control import Scalar

VERSIONED = ("flwr", "torch", "numpy")


def _app_module(name: str) -> ModuleType:
    if str(APP_DIR) not in sys.path:
        sys.path.append(str(APP_DIR))
    return importlib.import_module(name)


def directory_sha256(root: Path) -> str:
    """sha256 over (relative path, sha256 of the bytes) of every file, sorted; caches skipped."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if "__pycache__" in rel.split("/") or rel.endswith(".pyc"):
            continue
        h.update(f"{rel}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def app_sha256() -> str:
    return directory_sha256(APP_DIR)


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@lru_cache(maxsize=256)
def initial_model(seed: int) -> tuple[str, bytes]:
    """(sha256, bytes) of the initial model the ServerApp starts from for this seed."""
    model = _app_module("flp_flower.model")
    blob: bytes = model.state_bytes(model.new_model(seed).state_dict())
    return model.sha256_hex(blob), blob


def job_provenance(run_config: dict[str, Scalar]) -> JobProvenance:
    """The provenance of a run with this run config (what `run_config_for` produced)."""
    settings_mod = _app_module("flp_flower.settings")
    strategies = _app_module("flp_flower.strategies")
    settings: Any = settings_mod.RunSettings.from_run_config(run_config)
    flower_class, params = strategies.strategy_params(settings)
    weighted_by_key = str(params.get("weighted_by_key", "num-examples"))
    sha, _ = initial_model(settings.seed)
    return JobProvenance(
        initial_model_sha256=sha,
        strategy=StrategySpec(
            name=settings.strategy, flower_class=flower_class, weighted_by_key=weighted_by_key, params=params
        ),
        app_sha256=app_sha256(),
        versions=library_versions(),
        keep_client_updates=settings.keep_client_updates,
    )
