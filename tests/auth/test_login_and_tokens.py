"""People log in, services use API keys, the runtime is bound to its job, and events name the actor."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from api.auth.principal import Role
from api.auth.service import admin_credentials_file
from api.auth.tokens import InvalidToken, decode_token, issue_runtime_token, issue_token
from config.settings import Settings
from flp.wiring import Container, build_container
from tests.auth.helpers import admin_headers, bearer, role_headers
from tests.conftest import job_body, round_body


def client_for(container: Container, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    app = create_app(container, manage_lifespan=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers or {})


async def login(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await http.post("/auth/token", data={"grant_type": "password", "username": username, "password": password})


async def test_first_start_generates_an_owner_only_admin_credential(container: Container, settings: Settings) -> None:
    path = admin_credentials_file(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert creds["username"] == "admin" and len(creds["password"]) >= 24
    async with client_for(container) as http:
        r = await login(http, "admin", creds["password"])
        assert r.status_code == 200 and r.json()["token_type"] == "bearer"
        me = await http.get("/auth/me", headers=bearer(r.json()["access_token"]))
        assert me.json() == {"subject": "admin", "roles": ["admin"], "kind": "user", "job_id": None}
        for default in ("admin", "password", "changeme", ""):
            assert (await login(http, "admin", default)).status_code == 401


async def test_second_start_keeps_the_credential(container: Container, settings: Settings) -> None:
    before = admin_credentials_file(settings).read_text()
    again = await build_container(settings, with_runtime=False)
    await again.stop()
    assert admin_credentials_file(settings).read_text() == before


async def test_login_failures_do_not_reveal_whether_the_user_exists(api: httpx.AsyncClient) -> None:
    assert (
        await api.post("/users", json={"name": "alice", "roles": ["viewer"], "password": "correct horse battery"})
    ).status_code == 201
    wrong_password = await login(api, "alice", "not her password")
    no_such_user = await login(api, "mallory", "not her password")
    assert wrong_password.status_code == no_such_user.status_code == 401
    assert wrong_password.json() == no_such_user.json()
    assert wrong_password.headers.get("www-authenticate") == no_such_user.headers.get("www-authenticate")
    ok = await login(api, "alice", "correct horse battery")
    assert ok.status_code == 200


async def test_user_roles_apply_and_removed_users_lose_access(api: httpx.AsyncClient) -> None:
    await api.post("/users", json={"name": "vic", "roles": ["viewer"], "password": "viewer password 1"})
    token = (await login(api, "vic", "viewer password 1")).json()["access_token"]
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 200
    assert (await api.post("/jobs", json=job_body(), headers=bearer(token))).status_code == 403
    assert (await api.patch("/users/vic", json={"disabled": True})).status_code == 200
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 401
    assert (await api.delete("/users/vic")).status_code == 204
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 401


async def test_the_last_admin_cannot_be_removed(api: httpx.AsyncClient) -> None:
    assert (await api.delete("/users/admin")).status_code == 409
    assert (await api.patch("/users/admin", json={"roles": ["viewer"]})).status_code == 409


async def test_runtime_role_cannot_be_given_to_people(api: httpx.AsyncClient) -> None:
    r = await api.post("/users", json={"name": "rt", "roles": ["runtime"], "password": "runtime password"})
    assert r.status_code == 422


async def test_api_key_client_credentials_and_revocation(api: httpx.AsyncClient, container: Container) -> None:
    created = await api.post("/auth/api-keys", json={"name": "kafka-bridge", "roles": ["integrator"]})
    assert created.status_code == 201
    key = created.json()
    form = {"grant_type": "client_credentials", "client_id": key["client_id"], "client_secret": key["client_secret"]}
    async with client_for(container) as anon:
        token = (await anon.post("/auth/token", data=form)).json()["access_token"]
        basic = await anon.post(
            "/auth/token",
            data={"grant_type": "client_credentials"},
            auth=(key["client_id"], key["client_secret"]),
        )
        assert basic.status_code == 200
        bad = await anon.post("/auth/token", data={**form, "client_secret": "guess"})
        assert bad.status_code == 401
        me = (await anon.get("/auth/me", headers=bearer(token))).json()
        assert me["subject"] == "svc:kafka-bridge" and me["roles"] == ["integrator"] and me["kind"] == "service"
        assert (await anon.get("/events", headers=bearer(token))).status_code == 200
        assert (await anon.get("/jobs", headers=bearer(token))).status_code == 403
        listed = (await api.get("/auth/api-keys")).json()
        assert [k["client_secret"] for k in listed] == [None]
        assert (await api.delete(f"/auth/api-keys/{key['client_id']}")).status_code == 204
        assert (await anon.get("/events", headers=bearer(token))).status_code == 401
        assert (await anon.post("/auth/token", data=form)).status_code == 401


async def test_runtime_token_for_job_a_cannot_record_for_job_b(
    api: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    for job in ("A", "B"):
        assert (await api.post("/jobs", json=job_body(job_id=job))).status_code == 201
        for c in ("a", "b"):
            assert (await api.post(f"/jobs/{job}/clients", json={"client_id": c})).status_code == 200
    runtime_a = bearer(issue_runtime_token(settings, "A"))
    head = await container.store.head_position()
    refused = await api.post("/jobs/B/rounds", json=round_body(1), headers=runtime_a)
    assert refused.status_code == 403
    for path, body in (("/jobs/B/complete", {}), ("/jobs/B/fail", {"reason": "x"}), ("/jobs/B/start", {"run_id": "r"})):
        assert (await api.post(path, json=body, headers=runtime_a)).status_code == 403
    assert (await api.post("/jobs", json=job_body(job_id="C"), headers=runtime_a)).status_code == 403
    assert await container.store.head_position() == head  # nothing appended
    accepted = await api.post("/jobs/A/rounds", json=round_body(1), headers=runtime_a)
    assert accepted.status_code == 200
    assert accepted.json()["events"][0]["metadata"]["actor"] == "runtime:A"


async def test_operator_mints_runtime_tokens_for_existing_jobs(api: httpx.AsyncClient, settings: Settings) -> None:
    await api.post("/jobs", json=job_body(job_id="ext"))
    operator = role_headers(settings, Role.OPERATOR)
    r = await api.post("/auth/runtime-tokens", json={"job_id": "ext"}, headers=operator)
    assert r.status_code == 200
    principal = decode_token(settings, r.json()["access_token"])
    assert principal.kind == "runtime" and principal.job_id == "ext" and principal.roles == {Role.RUNTIME}
    assert (await api.post("/auth/runtime-tokens", json={"job_id": "nope"}, headers=operator)).status_code == 404


async def test_every_event_names_the_authenticated_principal(
    api: httpx.AsyncClient, container: Container, settings: Settings
) -> None:
    operator = role_headers(settings, Role.OPERATOR, subject="svc:ops-bot")
    await api.post("/jobs", json=job_body(job_id="J"), headers={**operator, "X-Correlation-ID": "corr-7"})
    await api.post("/jobs/J/clients", json={"client_id": "a"}, headers=admin_headers(settings))
    await api.post("/jobs/J/cancel", json={"reason": "done"}, headers=operator)
    events = await container.store.read_stream("job-J")
    assert [e.metadata["actor"] for e in events] == ["svc:ops-bot", "admin", "svc:ops-bot"]
    assert events[0].metadata["correlation_id"] == "corr-7"
    assert all(e.metadata["causation_id"] for e in events)


def test_rs256_tokens(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "jwt.pem", tmp_path / "jwt.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    rs = Settings(data_dir=tmp_path, jwt_algorithm="RS256", jwt_private_key_file=private, jwt_public_key_file=public)
    token = issue_token(rs, "alice", [Role.AUDITOR])
    assert decode_token(rs, token).roles == {Role.AUDITOR}
    verify_only = rs.model_copy(update={"jwt_private_key_file": None})
    assert decode_token(verify_only, token).subject == "alice"
    hs = Settings(data_dir=tmp_path, jwt_secret="s" * 40)
    with pytest.raises(InvalidToken):
        decode_token(rs, issue_token(hs, "alice", [Role.ADMIN]))  # HS256 token, RS256 server: refused
    with pytest.raises(InvalidToken):
        decode_token(hs, token)


def test_clock_skew_is_tolerated_within_the_leeway(tmp_path: Path) -> None:
    import time

    s = Settings(data_dir=tmp_path, jwt_secret="k" * 40, jwt_leeway_seconds=30)
    just_expired = issue_token(s, "a", [Role.VIEWER], ttl_seconds=60, now=time.time() - 70)
    assert decode_token(s, just_expired).subject == "a"
    long_expired = issue_token(s, "a", [Role.VIEWER], ttl_seconds=60, now=time.time() - 120)
    with pytest.raises(InvalidToken):
        decode_token(s, long_expired)


def test_short_jwt_secrets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        issue_token(Settings(data_dir=tmp_path, jwt_secret="short"), "a", [Role.VIEWER])


async def test_a_user_removed_by_another_process_loses_access_within_the_cache_delay(
    api: httpx.AsyncClient, container: Container
) -> None:
    """The guard remembers users for FLP_AUTH_CACHE_SECONDS; a removal through another process's
    store (another replica, a CLI) takes effect within that delay, not at once."""
    from adapters.sqlite_users import SqliteUserStore
    from api.auth.user_cache import CachedUserStore

    cache = container.auth.users
    assert isinstance(cache, CachedUserStore) and cache.ttl_s == container.settings.auth_cache_seconds > 0
    now = [1000.0]
    cache.clock = lambda: now[0]
    await api.post("/users", json={"name": "ola", "roles": ["viewer"], "password": "viewer password 2"})
    token = (await login(api, "ola", "viewer password 2")).json()["access_token"]
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 200  # now remembered
    other = await SqliteUserStore(container.settings.data_dir / "users.db").open()
    try:
        assert await other.delete_user("ola")
    finally:
        await other.close()
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 200  # within the delay
    now[0] += cache.ttl_s + 0.1
    assert (await api.get("/jobs", headers=bearer(token))).status_code == 401  # the delay has passed
