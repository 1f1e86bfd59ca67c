"""Shared fixtures: a platform container on a temporary data dir and an HTTP client for its API."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings as hypothesis_settings

# Timings are for bench/, not for pass/fail: no per-example deadline on a shared, noisy machine.
hypothesis_settings.register_profile("flp", deadline=None)
hypothesis_settings.load_profile("flp")

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

from api.app import create_app  # noqa: E402
from config.settings import Settings  # noqa: E402
from flp.wiring import Container, build_container  # noqa: E402
from tests.auth.helpers import admin_headers  # noqa: E402

# `make test` runs pytest on two workers (pytest-xdist). Tests that run real Flower processes go
# in two groups, each run in turn on one worker: Ray simulations ("ray": two Ray clusters at once
# on a 2-core machine only make both slow) and SuperNode fleets without Ray ("supernodes"); every
# other test is scheduled on its own beside them. By path, in our own scheduler: xdist's
# `xdist_group` mark rewrites node ids in a way pytest 9 no longer honours.
RAY_PATHS = ("tests/fl_runtime/", "tests/scaleout/")
SUPERNODE_PATHS = (
    "tests/fl_runtime/test_demo",
    "tests/fl_runtime/test_prove_model",
    "tests/fl_runtime/test_zygote",
    "tests/fl_runtime/test_deployment_engine",
    "tests/fl_runtime/test_remote_engine",
    "tests/fleet/",
    "tests/deploy/test_ansible",
    "tests/web/test_dashboard_browser",
    "tests/observability/test_fl_",
)


def flower_group(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    if path.startswith(SUPERNODE_PATHS):
        return "supernodes"
    if path.startswith(RAY_PATHS):
        return "ray"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flower: runs real Flower processes (tests/conftest.py groups them by path)")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class FlowerGroups(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return flower_group(nodeid) or nodeid

    return FlowerGroups(config, log)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded-default settings on a private data dir, without the Flower runtime."""
    return Settings(data_dir=tmp_path / "flp", flower_mode="off", api_port=0)


@pytest.fixture
async def container(settings: Settings) -> AsyncIterator[Container]:
    c = await build_container(settings)
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
async def api(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    """The real ASGI app over httpx (no network), bound to `container`."""
    app = create_app(container, manage_lifespan=False)
    transport = httpx.ASGITransport(app=app)
    headers = admin_headers(container.settings)  # the generated admin's token (auth is on by default)
    async with httpx.AsyncClient(transport=transport, base_url="http://flp.test", headers=headers) as client:
        yield client


def job_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "name": "test-job",
        "rounds": 3,
        "min_clients": 2,
        "num_clients": 3,
        "runtime": "external",
    }
    body.update(overrides)
    return body


def round_body(rnd: int, clients: tuple[str, ...] = ("a", "b"), **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "round": rnd,
        "results": [{"client_id": c, "num_examples": 100, "metrics": {"loss": 1.0 / rnd}} for c in clients],
        "central_metrics": {"accuracy": 0.5 + rnd / 10},
    }
    body.update(overrides)
    return body
