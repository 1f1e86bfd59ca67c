"""The auth matrix, generated from the app's route table: every route x every role, plus no
token and bad tokens. A route without a rule in api/auth/rules.py fails here."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from api.app import create_app
from api.auth.principal import Role
from api.auth.rules import RULES, rule_for
from api.auth.tokens import issue_runtime_token, issue_token
from config.settings import Settings
from flp.wiring import Container
from tests.auth.helpers import admin_headers, bearer, role_headers
from tests.conftest import job_body

JOB = "jm"
CLIENT = "cm"
SHA = "0" * 64
PARAMS = {"job_id": JOB, "client_id": CLIENT, "sha256": SHA, "name": "nobody-here"}
STREAMING = {
    "/live/jobs",
    "/live/jobs/{job_id}",
    "/ui/live/board",
    "/ui/live/fleet",
    "/ui/live/jobs/{job_id}",
}  # SSE: sent with a bad query so they answer 422, not a stream


# The access matrix, written out independently of api/auth/rules.py (admin may call everything).
# o=operator u=auditor v=viewer i=integrator r=runtime r*=runtime for its own job only, public=no token
EXPECTED: dict[str, str] = {
    "GET /health": "public",
    "POST /auth/token": "public",
    "GET /metrics": "scrape",  # only the scrape credential: no JWT, not even the admin's
    "GET /auth/me": "o u v i r",
    "POST /auth/runtime-tokens": "o",
    "POST /auth/api-keys": "",
    "GET /auth/api-keys": "",
    "DELETE /auth/api-keys/{client_id}": "",
    "POST /users": "",
    "GET /users": "",
    "GET /users/{name}": "",
    "PATCH /users/{name}": "",
    "DELETE /users/{name}": "",
    "POST /jobs": "o",
    "POST /jobs/{job_id}/cancel": "o",
    "POST /jobs/{job_id}/clients": "o r*",
    "POST /jobs/{job_id}/rounds": "r*",
    "POST /jobs/{job_id}/rounds/started": "r*",
    "POST /jobs/{job_id}/start": "r*",
    "POST /jobs/{job_id}/complete": "r*",
    "POST /jobs/{job_id}/fail": "r*",
    "GET /jobs": "o u v",
    "GET /jobs/{job_id}": "o u v r*",
    "GET /jobs/{job_id}/events": "o u",
    "GET /jobs/{job_id}/state": "o u",
    "GET /jobs/{job_id}/as-of": "u",
    "GET /jobs/{job_id}/diff": "u",
    "GET /jobs/{job_id}/audit": "u",
    "GET /jobs/{job_id}/audit/verify": "u",
    "GET /jobs/{job_id}/model": "o u v r*",
    "GET /audit/verify": "u",
    "GET /jobs/{job_id}/replay": "u",
    "GET /jobs/{job_id}/contributions": "o u v",
    "GET /audit/public-key": "public",
    "GET /jobs/{job_id}/lineage": "o u",
    "POST /clients": "o",
    "POST /clients/{client_id}/leave": "o",
    "GET /clients": "o u v",
    "GET /clients/{client_id}": "o u v",
    "POST /fleet/nodes": "o",
    "DELETE /fleet/nodes/{name}": "o",
    "GET /fleet/nodes": "o",
    "GET /fleet/nodes/{name}": "o",
    "GET /events": "i u",
    "GET /live/jobs": "o u v",
    "GET /live/jobs/{job_id}": "o u v",
    "PUT /artifacts/{sha256}": "r",
    "GET /artifacts/{sha256}": "o u v r",
    # the dashboard (api/web)
    "GET /": "public",
    "GET /ui/static/{name}": "public",
    "GET /ui/login": "public",
    "POST /ui/login": "public",
    "POST /ui/logout": "public",
    "GET /ui": "o u v",
    "GET /ui/fleet": "o u v",
    "GET /ui/jobs/{job_id}": "o u v",
    "GET /ui/jobs/{job_id}/audit": "u",
    "GET /ui/live/board": "o u v",
    "GET /ui/live/fleet": "o u v",
    "GET /ui/live/jobs/{job_id}": "o u v",
    "POST /ui/jobs": "o",
    "POST /ui/jobs/{job_id}/cancel": "o",
}
LETTER = {"o": Role.OPERATOR, "u": Role.AUDITOR, "v": Role.VIEWER, "i": Role.INTEGRATOR, "r": Role.RUNTIME}


def expected(call: Call, role: Role, runtime_job: str | None) -> str:
    """'public', 'allowed' or 'refused' for `role` (runtime tokens are bound to `runtime_job`)."""
    spec = EXPECTED[f"{call.method} {call.template}"]
    if spec == "public":
        return "public"
    if spec == "scrape":
        return "refused"
    if role is Role.ADMIN:
        return "allowed"
    for token in spec.split():
        if LETTER[token[0]] is role:
            return "allowed" if not token.endswith("*") or runtime_job == JOB else "refused"
    return "refused"


@dataclass(frozen=True)
class Call:
    method: str
    template: str
    path: str


def route_table(app: FastAPI) -> list[Call]:
    """Every API operation the app serves (the routers included into it, flattened)."""
    calls = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute) or context.path is None:
            continue
        path = template = context.path
        for name in re.findall(r"{(\w+)(?::[^}]*)?}", template):
            value = "key-0000000000000000" if template.startswith("/auth/api-keys/") else PARAMS.get(name, "x")
            path = re.sub("{" + name + "(?::[^}]*)?}", value, path)
        for method in sorted((context.methods or set()) - {"HEAD", "OPTIONS"}):
            calls.append(Call(method, template, path))
    return calls


@pytest.fixture
async def app(container: Container) -> AsyncIterator[FastAPI]:
    application = create_app(container, manage_lifespan=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://t") as http:
        headers = admin_headers(container.settings)
        assert (await http.post("/jobs", json=job_body(job_id=JOB), headers=headers)).status_code == 201
        r = await http.post("/clients", json={"client_id": CLIENT, "name": "matrix"}, headers=headers)
        assert r.status_code == 201
    yield application


async def send(app: FastAPI, call: Call, headers: dict[str, str]) -> int:
    params = {"after": "-1"} if call.template in STREAMING else {}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        kwargs: dict[str, object] = {"headers": headers, "params": params}
        if call.method in ("POST", "PUT", "PATCH"):
            kwargs["content"] = b"{}"  # not a valid command: allowed callers get 4xx validation, never a change
            kwargs["headers"] = {**headers, "content-type": "application/json"}
        r = await http.request(call.method, call.path, **kwargs)  # type: ignore[arg-type]
        return r.status_code


def test_every_route_has_a_rule_and_an_expected_row(container: Container) -> None:
    calls = route_table(create_app(container, manage_lifespan=False))
    missing = [f"{c.method} {c.template}" for c in calls if rule_for(c.method, c.template) is None]
    assert not missing, f"routes without an access rule in api/auth/rules.py: {missing}"
    unlisted = [f"{c.method} {c.template}" for c in calls if f"{c.method} {c.template}" not in EXPECTED]
    assert not unlisted, f"routes missing from this test's EXPECTED matrix: {unlisted}"
    assert len(calls) >= 30


PRINCIPALS = [*Role, "runtime-other-job"]


@pytest.mark.parametrize("who", PRINCIPALS, ids=str)
async def test_role_matrix(app: FastAPI, settings: Settings, who: str) -> None:
    """Allowed: neither 401 nor 403 nor 5xx (GETs of existing things are 2xx); refused: 403."""
    if who == "runtime-other-job":
        headers, role = bearer(issue_runtime_token(settings, "another-job")), Role.RUNTIME
    elif who == Role.ADMIN:
        headers, role = admin_headers(settings), Role.ADMIN
    else:
        headers, role = role_headers(settings, who, job_id=JOB), Role(who)
    runtime_job = "another-job" if who == "runtime-other-job" else JOB
    wrong = []
    for call in route_table(app):
        status = await send(app, call, headers)
        verdict = expected(call, role, runtime_job)
        if verdict in ("public", "allowed"):
            ok = status not in (401, 403) and status < 500
            if ok and call.method == "GET" and call.template in ("/jobs", "/jobs/{job_id}", "/clients", "/health"):
                ok = 200 <= status < 300
        else:
            ok = status == 403
        if not ok:
            wrong.append(f"{call.method} {call.template}: {status} (expected {verdict})")
    assert not wrong, f"{who}: " + "; ".join(wrong)


def _claims(settings: Settings, **over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "admin",
        "roles": ["admin"],
        "kind": "user",
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(over)
    return claims


def bad_tokens(settings: Settings) -> dict[str, dict[str, str]]:
    from api.auth.tokens import signing_keys

    key = signing_keys(settings).signing_key
    assert isinstance(key, bytes)
    past = time.time() - 7200
    return {
        "none": {},
        "garbage": bearer("not-a-jwt"),
        "basic-scheme": {"Authorization": "Basic YWRtaW46YWRtaW4="},
        "expired": bearer(issue_token(settings, "admin", [Role.ADMIN], ttl_seconds=600, now=past)),
        "wrong-signature": bearer(jwt.encode(_claims(settings), "x" * 64, algorithm="HS256")),
        "wrong-audience": bearer(jwt.encode(_claims(settings, aud="someone-else"), key, algorithm="HS256")),
        "wrong-issuer": bearer(jwt.encode(_claims(settings, iss="evil"), key, algorithm="HS256")),
        "alg-none": bearer(jwt.encode(_claims(settings), "", algorithm="none")),
        "unknown-role": bearer(jwt.encode(_claims(settings, roles=["root"]), key, algorithm="HS256")),
        "runtime-unbound": bearer(
            jwt.encode(_claims(settings, sub="rt", roles=["runtime"], kind="runtime"), key, algorithm="HS256")
        ),
        "user-gone": bearer(issue_token(settings, "ghost", [Role.ADMIN])),
    }


@pytest.mark.parametrize(
    "case",
    [
        "none",
        "garbage",
        "basic-scheme",
        "expired",
        "wrong-signature",
        "wrong-audience",
        "wrong-issuer",
        "alg-none",
        "unknown-role",
        "runtime-unbound",
        "user-gone",
    ],
)
async def test_no_or_bad_token_is_401_everywhere_but_public_routes(app: FastAPI, settings: Settings, case: str) -> None:
    headers = bad_tokens(settings)[case]
    wrong = []
    for call in route_table(app):
        rule = rule_for(call.method, call.template)
        assert rule is not None
        status = await send(app, call, headers)
        if (rule.public and status in (401, 403)) or (not rule.public and status != 401):
            wrong.append(f"{call.method} {call.template}: {status}")
    assert not wrong, f"{case}: " + "; ".join(wrong)


def test_rules_only_name_known_roles() -> None:
    for (method, _), rule in RULES.items():
        assert method in {"GET", "POST", "PUT", "PATCH", "DELETE"}
        assert rule.public or rule.scrape or rule.roles, "a rule without roles is admin-only: say so with roles(ADM)"
