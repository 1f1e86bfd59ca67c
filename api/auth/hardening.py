"""HTTP hardening: request body size limit, security headers, CORS allow-list, and the OpenAPI
security declarations generated from the route rules."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.rules import rule_for
from config.settings import Settings

LARGE_BODY_PREFIXES = ("/artifacts/",)  # model uploads: their own, larger limit
LARGE_BODY_BYTES = 256 * 1024 * 1024 + 65536

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")  # Swagger UI/ReDoc load scripts from a CDN


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodySizeLimit:
    """413 for bodies over the limit: by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = LARGE_BODY_BYTES if path.startswith(LARGE_BODY_PREFIXES) else self.max_bytes
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _problem(send, 413, "Content Too Large", f"request body larger than {limit} bytes")
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge as exc:
            if started:
                raise
            await _problem(send, 413, "Content Too Large", str(exc.detail))


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = str(scope.get("path", "")).startswith(DOCS_PATHS)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = SECURITY_HEADERS if docs else [*SECURITY_HEADERS, API_CSP]
                headers += [(k, v) for k, v in extra if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _problem(send: Send, status: int, title: str, detail: str) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_hardening(app: FastAPI, settings: Settings) -> None:
    """Middleware, outermost first: CORS (answers preflights), security headers, body limit."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "Last-Event-ID",
                "X-Correlation-Id",
                "X-Causation-Id",
                "traceparent",
            ],
            expose_headers=["ETag", "Retry-After", "Location"],
            max_age=600,
        )
    _declare_security(app)


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "code": {"type": "string"},
    },
    "additionalProperties": True,
}


def _declare_security(app: FastAPI) -> None:
    """OpenAPI: an OAuth2 password flow + bearer scheme, required on every non-public route; error
    responses documented as the problem+json they are."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {})["bearer"] = {
            "type": "oauth2",
            "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}},
            "description": "JWT from POST /auth/token (password or client_credentials grant)",
        }
        components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if not isinstance(operation, dict):
                    continue
                responses = operation.setdefault("responses", {})
                rule = rule_for(method, path)
                if rule is not None and not rule.public:
                    operation["security"] = [{"bearer": []}]
                    responses.setdefault("401", {"description": "no valid token"})
                    responses.setdefault("403", {"description": "the role does not allow this"})
                responses.setdefault("429", {"description": "rate limit exceeded (see Retry-After)"})
                if "{" in path:
                    responses.setdefault("404", {"description": "no such resource"})
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "the body could not be parsed"})
                    responses.setdefault("413", {"description": "the body is larger than the limit"})
                if method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                    responses.setdefault("409", {"description": "a rule or the expected version was broken"})
                for status, response in responses.items():
                    if str(status).startswith(("4", "5")):  # errors are problem+json (api/errors.py)
                        response["content"] = problem
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
