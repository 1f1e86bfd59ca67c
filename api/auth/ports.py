"""The user store port: people (password hashes, roles) and service API keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from api.auth.principal import Role


class AlreadyExists(Exception):
    pass


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str
    roles: frozenset[Role]
    created_at: str
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A service credential: `client_id` + a secret (stored as sha256; secrets are random, 256 bits)."""

    client_id: str
    secret_sha256: str
    name: str
    roles: frozenset[Role]
    created_at: str
    revoked: bool = False


class UserStore(Protocol):
    async def get_user(self, name: str) -> UserRecord | None: ...

    async def add_user(self, user: UserRecord) -> None:
        """Raises AlreadyExists when the name is taken."""
        ...

    async def list_users(self) -> list[UserRecord]: ...

    async def update_user(self, user: UserRecord) -> bool:
        """Replace an existing user's hash/roles/disabled flag; False when there is no such user."""
        ...

    async def delete_user(self, name: str) -> bool: ...

    async def add_api_key(self, key: ApiKeyRecord) -> None: ...

    async def get_api_key(self, client_id: str) -> ApiKeyRecord | None: ...

    async def list_api_keys(self) -> list[ApiKeyRecord]: ...

    async def revoke_api_key(self, client_id: str) -> bool: ...

    async def close(self) -> None: ...
