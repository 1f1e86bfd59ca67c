"""How the CLI reaches the platform: a running server (FLP_API_URL) or the data dir in-process.

Both go through the same HTTP API, so the CLI has one code path and the same rules and errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from api.app import create_app
from config.settings import Settings
from flp.wiring import build_container


class ApiError(Exception):
    """The API refused a request (4xx/5xx): carries the problem+json reason."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


class Unreachable(Exception):
    pass


class FlpClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach flp at {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"title": response.reason_phrase, "detail": response.text[:500]}
            raise ApiError(response.status_code, problem if isinstance(problem, dict) else {"detail": str(problem)})
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    async def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return await self.request("POST", path, json=body, headers=headers or {})


def auth_headers(settings: Settings) -> dict[str, str]:
    """Credentials for the CLI: FLP_TOKEN, else the generated admin credential in the data dir."""
    from api.auth.client import cli_token

    token = cli_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[FlpClient]:
    if settings.api_url:
        headers = auth_headers(settings)
        async with httpx.AsyncClient(base_url=settings.api_url, headers=headers, timeout=30.0) as http:
            yield FlpClient(http)
        return
    container = await build_container(settings, with_runtime=False)
    headers = auth_headers(settings)  # after the container: its first start generates the admin credential
    app = create_app(container, manage_lifespan=False)
    await container.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://flp.local", headers=headers) as http:
            yield FlpClient(http)
    finally:
        await container.stop()
