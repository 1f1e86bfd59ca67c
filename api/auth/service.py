"""The auth service the API uses: credentials -> principal -> token, token -> principal."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.auth.passwords import generate_password, hash_password, verify_password
from api.auth.principal import Principal, Role
from api.auth.ratelimit import RateLimiter
from api.auth.tokens import InvalidToken, SigningKeys, decode_token, issue_token, signing_keys
from api.auth.user_cache import CachedUserStore
from config.secrets import load_or_create_secret, metrics_token_file
from config.settings import Settings
from persistence.ports import ApiKeyRecord, UserRecord, UserStore

ADMIN_USER = "admin"
MAX_CACHED_TOKENS = 10_000


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def admin_credentials_file(settings: Settings) -> Path:
    """Where the generated admin credential of the embedded default is written (mode 0600)."""
    return settings.data_dir / "admin-credentials.json"


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AuthService:
    def __init__(self, settings: Settings, users: UserStore, limiter: RateLimiter | None = None) -> None:
        self.settings = settings
        self.users: UserStore = CachedUserStore(users, settings.auth_cache_seconds)
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_storage)
        self._keys: SigningKeys | None = None
        self._tokens: dict[str, tuple[float, Principal]] = {}
        self._scrape: bytes | None = None

    @property
    def scrape_credential(self) -> bytes:
        """The metrics scrape credential, created (0600) on first use."""
        if self._scrape is None:
            self._scrape = load_or_create_secret(metrics_token_file(self.settings))
        return self._scrape

    @property
    def keys(self) -> SigningKeys:
        if self._keys is None:
            self._keys = signing_keys(self.settings)
        return self._keys

    # --- tokens ------------------------------------------------------------------------------

    def issue(self, principal: Principal, ttl_seconds: int | None = None) -> str:
        return issue_token(
            self.settings,
            principal.subject,
            principal.roles,
            kind=principal.kind,
            job_id=principal.job_id,
            client_id=principal.client_id,
            ttl_seconds=ttl_seconds,
            keys=self.keys,
        )

    def decoded(self, token: str) -> Principal:
        """The token's claims, checked once and remembered until the token expires (or for
        FLP_AUTH_CACHE_SECONDS): a signature check per request for the same token is waste."""
        now = time.time()
        cached = self._tokens.get(token)
        if cached is not None and now < cached[0]:
            return cached[1]
        principal = decode_token(self.settings, token, keys=self.keys)
        expires = (principal.expires_at or now) + self.settings.jwt_leeway_seconds
        if self.settings.auth_cache_seconds > 0:
            if len(self._tokens) >= MAX_CACHED_TOKENS:
                self._tokens.clear()
            self._tokens[token] = (min(now + self.settings.auth_cache_seconds, expires), principal)
        return principal

    async def principal_from_token(self, token: str) -> Principal:
        """The token's principal, if the user/API key behind it still exists and is enabled."""
        principal = self.decoded(token)
        if principal.kind == "user":
            user = await self.users.get_user(principal.subject)
            if user is None or user.disabled:
                raise InvalidToken("the user no longer exists or is disabled")
            return Principal(principal.subject, principal.roles & user.roles, "user", None, principal.token_id)
        if principal.kind == "service" and principal.client_id is not None:
            key = await self.users.get_api_key(principal.client_id)
            if key is None or key.revoked:
                raise InvalidToken("the API key was revoked")
        return principal

    # --- credentials -------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> Principal | None:
        """None for an unknown user and for a wrong password alike (same work, same answer)."""
        user = await self.users.get_user(username)
        ok = verify_password(password, user.password_hash if user is not None else None)
        if user is None or not ok or user.disabled:
            return None
        return Principal(user.name, user.roles, "user")

    async def client_credentials(self, client_id: str, client_secret: str) -> Principal | None:
        key = await self.users.get_api_key(client_id)
        expected = key.secret_sha256 if key is not None else secret_digest(secrets.token_hex(16))
        ok = hmac.compare_digest(expected, secret_digest(client_secret))
        if key is None or not ok or key.revoked:
            return None
        return Principal(f"svc:{key.name}", key.roles, "service", client_id=key.client_id)

    async def create_user(self, name: str, password: str, roles: frozenset[Role]) -> UserRecord:
        user = UserRecord(name, hash_password(password), roles, now_iso())
        await self.users.add_user(user)
        return user

    async def create_api_key(self, name: str, roles: frozenset[Role]) -> tuple[ApiKeyRecord, str]:
        client_id = f"key-{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        key = ApiKeyRecord(client_id, secret_digest(secret), name, roles, now_iso())
        await self.users.add_api_key(key)
        return key, secret

    async def ensure_admin(self) -> Path | None:
        """Secure by default: with no admin yet, generate one with a random password and write it
        to `admin-credentials.json` (mode 0600) in the data dir. Returns that path if it did."""
        if any(Role.ADMIN in u.roles and not u.disabled for u in await self.users.list_users()):
            return None
        password = generate_password()
        existing = await self.users.get_user(ADMIN_USER)
        if existing is not None:
            await self.users.update_user(
                UserRecord(ADMIN_USER, hash_password(password), existing.roles | {Role.ADMIN}, existing.created_at)
            )
        else:
            await self.create_user(ADMIN_USER, password, frozenset({Role.ADMIN}))
        path = admin_credentials_file(self.settings)
        write_private_json(
            path,
            {
                "username": ADMIN_USER,
                "password": password,
                "roles": [Role.ADMIN.value],
                "token_url": "/auth/token",
                "created_at": now_iso(),
            },
        )
        return path

    async def close(self) -> None:
        await self.users.close()


def write_private_json(path: Path, value: dict[str, Any]) -> None:
    """Write JSON readable only by the owner, replacing any earlier file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".admin-", dir=path.parent)  # mkstemp creates with mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_admin_credentials(settings: Settings) -> dict[str, Any] | None:
    path = admin_credentials_file(settings)
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


async def open_auth(settings: Settings, users: UserStore) -> AuthService:
    """The auth service over a user store; creates the first admin credential when there is none."""
    service = AuthService(settings, users)
    if settings.auth_enabled:
        _ = service.keys  # generates the HS256 secret file on first start (when no FLP_JWT_SECRET)
        _ = service.scrape_credential  # and the metrics scrape credential, for Prometheus to read
        await service.ensure_admin()
    return service
