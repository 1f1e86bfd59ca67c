"""The layering is checked, and the check bites: the import contracts in pyproject.toml pass on
the code as it is, and fail as soon as an import points back up a layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "config",
    "domain",
    "persistence",
    "commands",
    "projections",
    "audit",
    "adapters",
    "api",
    "fl_runtime",
    "flp",
]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"}
    return subprocess.run([LINT, "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def copy_tree(tmp: Path) -> Path:
    tree = tmp / "src"
    tree.mkdir()
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "flower_app"))
    return tree


def test_every_import_points_inward(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_back_arrow_breaks_the_check(tmp_path: Path) -> None:
    tree = copy_tree(tmp_path)
    with (tree / "projections" / "runner.py").open("a") as f:
        f.write("\nimport adapters.live_hub  # noqa: E402,F401  (a use case reaching out to an adapter)\n")
    with (tree / "domain" / "events.py").open("a") as f:
        f.write("\nimport config.settings  # noqa: E402,F401\n")
    result = lint(tree)
    assert result.returncode != 0
    assert "projections is not allowed to import adapters" in result.stdout, result.stdout
    assert "domain.events -> config.settings" in result.stdout, result.stdout
