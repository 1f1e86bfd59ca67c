"""JWT access tokens (PyJWT): HS256 with FLP_JWT_SECRET (or a generated secret file) or RS256 with key files.

Claims: `sub` (the actor), `roles`, `kind` (user | service | runtime), `job` (runtime tokens only),
`cid` (the API key a service token came from), `iss`, `aud`, `iat`, `nbf`, `exp`, `jti`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from api.auth.principal import Principal, PrincipalKind, Role, parse_roles
from config.secrets import load_or_create_secret
from config.settings import Settings

RUNTIME_TOKEN_TTL_SECONDS = 24 * 3600


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired, or not ours."""


@dataclass(frozen=True, slots=True)
class SigningKeys:
    algorithm: str
    signing_key: Any | None  # None: this process can verify but not issue tokens
    verifying_key: Any


def jwt_secret_file(settings: Settings) -> Path:
    """FLP_JWT_SECRET_FILE (a secret mounted into every replica), else one in the data dir."""
    return settings.jwt_secret_file or settings.data_dir / "secrets" / "jwt-hs256.key"


def signing_keys(settings: Settings) -> SigningKeys:
    """The keys for `settings`. HS256 without FLP_JWT_SECRET uses a random secret generated once
    into the data dir (mode 0600): there is no default secret."""
    if settings.jwt_algorithm == "RS256":
        if settings.jwt_public_key_file is None:
            raise ValueError("RS256 needs FLP_JWT_PUBLIC_KEY_FILE (and FLP_JWT_PRIVATE_KEY_FILE to issue tokens)")
        public = settings.jwt_public_key_file.read_bytes()
        private = settings.jwt_private_key_file.read_bytes() if settings.jwt_private_key_file else None
        return SigningKeys("RS256", private, public)
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        if len(settings.jwt_secret.get_secret_value()) < 32:
            raise ValueError("FLP_JWT_SECRET must be at least 32 characters")
        secret = settings.jwt_secret.get_secret_value().encode()
    else:
        secret = load_or_create_secret(jwt_secret_file(settings))
    return SigningKeys("HS256", secret, secret)


def issue_token(
    settings: Settings,
    subject: str,
    roles: Iterable[Role | str],
    *,
    kind: PrincipalKind = "user",
    job_id: str | None = None,
    client_id: str | None = None,
    ttl_seconds: int | None = None,
    now: float | None = None,
    keys: SigningKeys | None = None,
) -> str:
    keys = keys or signing_keys(settings)
    if keys.signing_key is None:
        raise ValueError("this process has no private key to issue tokens (FLP_JWT_PRIVATE_KEY_FILE)")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": sorted(str(r) for r in parse_roles([str(r) for r in roles])),
        "kind": kind,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + (ttl_seconds if ttl_seconds is not None else settings.jwt_ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if job_id is not None:
        claims["job"] = job_id
    if client_id is not None:
        claims["cid"] = client_id
    return jwt.encode(claims, keys.signing_key, algorithm=keys.algorithm)


def issue_runtime_token(settings: Settings, job_id: str, ttl_seconds: int = RUNTIME_TOKEN_TTL_SECONDS) -> str:
    """A token for the FL runtime of one job: it may report start/rounds/complete/fail/artifacts
    for `job_id` only. The job supervisor passes it to the ServerApp."""
    return issue_token(
        settings, f"runtime:{job_id}", [Role.RUNTIME], kind="runtime", job_id=job_id, ttl_seconds=ttl_seconds
    )


def decode_token(settings: Settings, token: str, *, keys: SigningKeys | None = None) -> Principal:
    """The principal a token names; InvalidToken for anything else (expired, wrong key/issuer/audience)."""
    keys = keys or signing_keys(settings)
    try:
        claims = jwt.decode(
            token,
            keys.verifying_key,
            algorithms=[keys.algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    try:
        roles = parse_roles(list(claims.get("roles") or []))
    except (ValueError, TypeError):
        raise InvalidToken("token names an unknown role") from None
    kind = claims.get("kind", "user")
    if kind not in ("user", "service", "runtime"):
        raise InvalidToken("token has an unknown kind")
    job = claims.get("job")
    if kind == "runtime" and (not isinstance(job, str) or roles != {Role.RUNTIME}):
        raise InvalidToken("runtime tokens are bound to one job and hold only the runtime role")
    if Role.RUNTIME in roles and kind != "runtime":
        raise InvalidToken("the runtime role needs a job-bound runtime token")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("token has no subject")
    cid = claims.get("cid")
    return Principal(
        subject=sub,
        roles=roles,
        kind=kind,
        job_id=job if isinstance(job, str) else None,
        token_id=str(claims.get("jti") or "") or None,
        client_id=cid if isinstance(cid, str) else None,
        expires_at=float(claims["exp"]),
    )
