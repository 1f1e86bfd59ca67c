"""The guard every route runs first: it authenticates the caller and applies the route's rule.

It runs after routing, so it knows the route's path template and path parameters (a runtime
token's job binding is checked against `{job_id}`). Order: rule lookup (no rule: 403 for all),
public routes (rate limited by client address), bearer token (401), per-principal rate limit
(429 with Retry-After), role and job binding (403). The principal lands in
`request.state.principal`, where the command context takes the actor from.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from api.auth.principal import ANONYMOUS_ADMIN, Principal
from api.auth.rules import Rule, rule_for
from api.auth.service import AuthService
from api.auth.session import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, LoginRequired, check_csrf
from api.auth.tokens import InvalidToken
from api.deps import get_auth
from api.fast_handler import FastHandler

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flp"'}
INVALID = {"WWW-Authenticate": 'Bearer realm="flp", error="invalid_token"'}


def route_rule(request: Request) -> Rule | None:
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    rule = rule_for(request.method, template)
    if rule is None and request.method == "HEAD":
        rule = rule_for("GET", template)
    return rule


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def enforce_rate_limit(auth: AuthService, key: str) -> None:
    retry_after = await auth.limiter.check(key)
    if retry_after:
        raise HTTPException(429, "rate limit exceeded; retry later", headers={"Retry-After": str(retry_after)})


async def check_scrape_credential(auth: AuthService, token: str | None) -> None:
    """Prometheus' bearer credential (its `authorization.credentials_file`): the contents of
    FLP_METRICS_TOKEN_FILE. A user's or a service's JWT - the admin's included - is not it."""
    if token is None:
        raise HTTPException(401, "send the metrics scrape credential as a bearer token", headers=CHALLENGE)
    if not hmac.compare_digest(token.encode(), auth.scrape_credential):
        try:
            await auth.principal_from_token(token)
        except InvalidToken:
            raise HTTPException(401, "not the metrics scrape credential", headers=INVALID) from None
        raise HTTPException(403, "a user or service token cannot scrape metrics: use the scrape credential")


async def authorize(request: Request) -> None:
    rule = route_rule(request)
    if rule is None:
        raise HTTPException(403, "this route has no access rule; nobody may call it")
    auth = get_auth(request)
    if rule.public:
        await enforce_rate_limit(auth, f"ip:{client_address(request)}")
        return
    if rule.scrape:
        await enforce_rate_limit(auth, f"ip:{client_address(request)}")
        await check_scrape_credential(auth, bearer_token(request))
        return
    if not auth.settings.auth_enabled:
        request.state.principal = ANONYMOUS_ADMIN
        return
    token = bearer_token(request)
    cookie = token is None and SESSION_COOKIE in request.cookies  # the dashboard's browser session
    if cookie:
        token = request.cookies[SESSION_COOKIE]
    page = rule.page and request.method in SAFE_METHODS
    if token is None:
        if page:
            raise LoginRequired("log in to see the dashboard")
        raise HTTPException(401, "authentication required: send Authorization: Bearer <token>", headers=CHALLENGE)
    try:
        principal: Principal = await auth.principal_from_token(token)
    except InvalidToken:
        if page:
            raise LoginRequired("your session expired; log in again") from None
        raise HTTPException(401, "invalid or expired token", headers=INVALID) from None
    await enforce_rate_limit(auth, principal.rate_key)
    if cookie and request.method not in SAFE_METHODS:
        check_csrf(token, request.headers.get(CSRF_HEADER))
    if not rule.allows(principal, {k: str(v) for k, v in request.path_params.items()}):
        raise HTTPException(403, "your role does not allow this")
    request.state.principal = principal


class GuardedRoute(APIRoute):
    """An API route whose handler runs `authorize` before anything else of the request (its
    dependencies, its body). A route class rather than an app-wide `Depends(authorize)`: FastAPI
    solves each dependency's path, query, header and cookie parameters on every request, and
    for the guard, which only needs the request, that was a tenth of a GET's time. A model body
    and the dependencies that take only the request are solved before FastAPI's handler
    (api/fast_handler.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        fast = FastHandler.of(self)
        handler = fast.handler(self, APIRoute.get_route_handler) if fast else super().get_route_handler()

        async def guarded(request: Request) -> Response:
            await authorize(request)
            return await handler(request)

        return guarded
