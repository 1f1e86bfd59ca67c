"""Body size limit, per-principal rate limiting, CORS allow-list and security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.auth.principal import Role
from api.auth.ratelimit import RateLimiter
from api.auth.service import AuthService
from config.settings import Settings
from flp.wiring import Container, build_container
from tests.auth.helpers import admin_headers, role_headers
from tests.conftest import job_body


class FakeClock:
    """Stands in for the `time` module inside the limiter's storage: no sleeping in tests."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def fake_limiter(monkeypatch: pytest.MonkeyPatch, per_minute: int) -> tuple[RateLimiter, FakeClock]:
    import limits.aio.storage.memory

    clock = FakeClock()
    monkeypatch.setattr(limits.aio.storage.memory, "time", clock)
    return RateLimiter(per_minute, clock=clock), clock


async def test_bodies_over_the_limit_are_413_and_append_nothing(api: httpx.AsyncClient, container: Container) -> None:
    limit = container.settings.max_body_bytes
    big = b'{"name": "' + b"x" * (limit + 10) + b'"}'
    r = await api.post("/jobs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    r = await api.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert await container.store.head_position() == 0


async def test_rate_limit_is_per_principal_with_retry_after(
    api: httpx.AsyncClient, container: Container, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth: AuthService = container.auth
    auth.limiter, clock = fake_limiter(monkeypatch, 3)  # 3 in any minute
    viewer = role_headers(settings, Role.VIEWER, subject="svc:dash")
    for _ in range(3):
        assert (await api.get("/jobs", headers=viewer)).status_code == 200
        clock.now += 10
    limited = await api.get("/jobs", headers=viewer)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"  # when the first of the three leaves the window
    assert limited.json()["title"] == "Too Many Requests"
    other = role_headers(settings, Role.VIEWER, subject="svc:other-dash")
    assert (await api.get("/jobs", headers=other)).status_code == 200  # someone else is not limited
    clock.now += 31
    assert (await api.get("/jobs", headers=viewer)).status_code == 200
    assert (await api.get("/jobs", headers=viewer)).status_code == 429


async def test_login_attempts_are_rate_limited_by_address(
    api: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    container.auth.limiter, _ = fake_limiter(monkeypatch, 2)
    form = {"grant_type": "password", "username": "admin", "password": "guess"}
    statuses = [(await api.post("/auth/token", data=form)).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


async def test_security_headers_on_every_response(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/jobs", "/nope"):
        r = await api.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers  # Swagger UI needs its CDN


async def test_cors_allows_only_configured_origins(settings: Settings) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://dash.example"]})
    container = await build_container(configured, with_runtime=False)
    try:
        app = create_app(container, manage_lifespan=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            preflight = {"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
            ok = await http.options("/jobs", headers={**preflight, "Access-Control-Request-Headers": "authorization"})
            assert ok.status_code == 200
            assert ok.headers["access-control-allow-origin"] == "https://dash.example"
            evil = await http.options("/jobs", headers={**preflight, "Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in evil.headers
            simple = await http.get("/jobs", headers={"Origin": "https://dash.example", **admin_headers(configured)})
            assert simple.headers["access-control-allow-origin"] == "https://dash.example"
            r = await http.post("/jobs", json=job_body(), headers={"Origin": "https://evil.example"})
            assert r.status_code == 401 and "access-control-allow-origin" not in r.headers
    finally:
        await container.stop()


async def test_no_cors_headers_without_configuration(api: httpx.AsyncClient) -> None:
    r = await api.get("/jobs", headers={"Origin": "https://dash.example"})
    assert "access-control-allow-origin" not in r.headers


async def test_auth_can_be_switched_off_for_local_development(settings: Settings) -> None:
    open_settings = settings.model_copy(update={"auth_enabled": False})
    container = await build_container(open_settings, with_runtime=False)
    await container.start()
    try:
        app = create_app(container, manage_lifespan=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            r = await http.post("/jobs", json=job_body(job_id="open"))
            assert r.status_code == 201
            assert r.json()["events"][0]["metadata"]["actor"] == "anonymous"
    finally:
        await container.stop()
