"""Requests by route template, method and status, and their latency (Prometheus): a pure ASGI
middleware, so nothing wraps the response body. The route is the template (`/jobs/{job_id}`),
never the raw path, so labels stay few."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry import metrics


class HttpMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.child(metrics.HTTP_REQUESTS, route, method, str(status)).inc()
            metrics.child(metrics.HTTP_SECONDS, route, method).observe(time.perf_counter() - started)
