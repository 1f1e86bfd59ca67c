"""A real `flp serve` process (simulation engine) and Debian's chromium driven by Playwright, shared
by the module's browser tests (one Flower job for all of them)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.ports import free_port
from config.settings import Settings
from tests.auth.helpers import admin_headers

FLP = str(Path(sys.executable).with_name("flp"))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AUDITOR = ("alice-auditor", "auditor-password-123")


@dataclass
class ServeProcess:
    """`flp serve` on a fixed free port, killed and restarted by tests that need it."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLP_DATA_DIR": str(self.data_dir),
            "FLP_API_PORT": str(self.port),
            "FLP_FLOWER_MODE": "deployment",  # the demo's engine: a job in seconds, no Ray cluster
            "FLP_RATE_LIMIT_PER_MINUTE": "0",
            "OTEL_SDK_DISABLED": "true",
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
        }

    def start(self) -> None:
        log = (self.data_dir.parent / "serve.log").open("ab")
        self.proc = subprocess.Popen([FLP, "serve"], env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.data_dir.parent / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("flp serve did not come up")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=admin_headers(Settings(data_dir=self.data_dir)), timeout=30)

    def admin_password(self) -> str:
        password: str = json.loads((self.data_dir / "admin-credentials.json").read_text())["password"]
        return password

    def events(self, job_id: str) -> list[dict[str, Any]]:
        with self.admin as http:
            items: list[dict[str, Any]] = http.get(f"/jobs/{job_id}/events").json()["items"]
            return items

    def job_total(self) -> int:
        with self.admin as http:
            total: int = http.get("/jobs", params={"limit": 1}).json()["total"]
            return total


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path_factory.mktemp("flp-web") / "data")
    server.data_dir.mkdir(parents=True)
    server.start()
    with server.admin as http:
        body = {"name": AUDITOR[0], "roles": ["auditor"], "password": AUDITOR[1]}
        assert http.post("/users", json=body).status_code == 201
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: scripts/setup-tools.sh installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")
