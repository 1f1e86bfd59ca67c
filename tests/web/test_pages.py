"""The dashboard's HTTP side without a browser (the real app over httpx): the session cookie,
CSRF, the login redirect, escaping, the static whitelist and the page CSP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.auth.principal import Role
from api.auth.service import read_admin_credentials
from api.auth.session import SESSION_COOKIE
from flp.wiring import Container
from tests.auth.helpers import admin_headers
from tests.conftest import job_body


@pytest.fixture
async def web(container: Container) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(container, manage_lifespan=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://flp.test") as client:
        yield client


async def logged_in(web: httpx.AsyncClient, container: Container) -> str:
    creds = read_admin_credentials(container.settings)
    assert creds is not None
    r = await web.post("/ui/login", data={"username": creds["username"], "password": creds["password"]})
    assert r.status_code == 303 and r.headers["location"] == "/ui"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=1800" in cookie
    board = await web.get("/ui")
    assert board.status_code == 200
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]{64})"', board.text)
    assert found
    return found.group(1)


async def test_a_page_without_a_session_sends_browsers_to_the_login_form(web: httpx.AsyncClient) -> None:
    r = await web.get("/ui", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    r = await web.get("/ui")  # not a browser: the API's answer
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert (await web.get("/")).headers["location"] == "/ui"


async def test_a_login_form_sent_by_another_site_is_refused(web: httpx.AsyncClient, container: Container) -> None:
    creds = read_admin_credentials(container.settings)
    assert creds is not None
    form = {"username": creds["username"], "password": creds["password"]}
    r = await web.post("/ui/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403 and "set-cookie" not in r.headers


async def test_downloads_work_with_the_session(web: httpx.AsyncClient, container: Container) -> None:
    assert (await web.post("/jobs", json=job_body(job_id="dl"), headers=admin_headers(container.settings))).is_success
    await logged_in(web, container)
    bundle = await web.get("/jobs/dl/audit")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("application/x-ndjson")
    audit = await web.get("/ui/jobs/dl/audit")
    assert audit.status_code == 200 and 'href="/jobs/dl/audit"' in audit.text and "verified" in audit.text


async def test_the_cookie_is_secure_behind_the_tls_proxy(web: httpx.AsyncClient, container: Container) -> None:
    creds = read_admin_credentials(container.settings)
    assert creds is not None
    form = {"username": creds["username"], "password": creds["password"]}
    r = await web.post("/ui/login", data=form, headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_a_wrong_password_sets_no_cookie(web: httpx.AsyncClient) -> None:
    r = await web.post("/ui/login", data={"username": "admin", "password": "not-it"})
    assert r.status_code == 400 and "wrong username or password" in r.text
    assert "set-cookie" not in r.headers


async def test_state_changes_need_the_sessions_csrf_token(web: httpx.AsyncClient, container: Container) -> None:
    csrf = await logged_in(web, container)
    form = {"name": "via form", "rounds": "2", "min_clients": "1", "runtime": "external"}
    missing = await web.post("/ui/jobs", data=form)
    wrong = await web.post("/ui/jobs", data=form, headers={"X-CSRF-Token": "0" * 64})
    assert missing.status_code == wrong.status_code == 403
    assert (await web.get("/jobs")).json()["total"] == 0
    ok = await web.post("/ui/jobs", data=form, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201 and "started" in ok.text
    assert (await web.get("/jobs")).json()["total"] == 1
    job_id = re.search(r"job (\w+) started", ok.text).group(1)  # type: ignore[union-attr]
    again = await web.post(f"/ui/jobs/{job_id}/cancel", data={}, headers={"X-CSRF-Token": csrf})
    assert again.status_code == 200
    twice = await web.post(f"/ui/jobs/{job_id}/cancel", data={}, headers={"X-CSRF-Token": csrf})
    assert twice.status_code == 409 and "terminal states are final" in twice.text


async def test_bearer_callers_need_no_csrf_token(web: httpx.AsyncClient, container: Container) -> None:
    form = {"name": "script", "rounds": "1", "min_clients": "1", "runtime": "external"}
    r = await web.post("/ui/jobs", data=form, headers=admin_headers(container.settings))
    assert r.status_code == 201, r.text


async def test_values_are_escaped_in_pages_and_live_fragments(web: httpx.AsyncClient, container: Container) -> None:
    name = '<img src=x onerror="alert(1)">'
    headers = admin_headers(container.settings)
    r = await web.post("/jobs", json=job_body(job_id="xss", name=name), headers=headers)
    assert r.status_code == 201
    await logged_in(web, container)
    for path in ("/ui", "/ui/jobs/xss"):
        text = (await web.get(path)).text
        assert name not in text and "&lt;img src=x onerror=" in text, path


async def test_pages_carry_a_strict_csp_and_static_files_are_a_fixed_set(
    web: httpx.AsyncClient, container: Container
) -> None:
    await logged_in(web, container)
    csp = (await web.get("/ui")).headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp
    js = await web.get("/ui/static/htmx-2.0.11.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for name in ("..%2Fviews.py", "routes.py", "nope.js"):
        assert (await web.get(f"/ui/static/{name}")).status_code == 404


async def test_an_auditor_session_cannot_start_jobs(web: httpx.AsyncClient, container: Container) -> None:
    await container.auth.create_user("audrey", "auditor-password-1", frozenset({Role.AUDITOR}))
    r = await web.post("/ui/login", data={"username": "audrey", "password": "auditor-password-1"})
    assert r.status_code == 303
    board = await web.get("/ui")
    assert 'id="start-form"' not in board.text
    csrf = re.search(r'"X-CSRF-Token": "([0-9a-f]{64})"', board.text).group(1)  # type: ignore[union-attr]
    form = {"name": "forged", "rounds": "1", "min_clients": "1", "runtime": "external"}
    r = await web.post("/ui/jobs", data=form, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    assert web.cookies.get(SESSION_COOKIE)
