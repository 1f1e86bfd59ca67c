"""Who is calling: the authenticated principal and the roles it holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from domain.roles import ALL_ROLES, Role, parse_roles

__all__ = ["ALL_ROLES", "ANONYMOUS_ADMIN", "Principal", "PrincipalKind", "Role", "parse_roles"]


PrincipalKind = Literal["user", "service", "runtime"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `subject` is what events record as their actor."""

    subject: str
    roles: frozenset[Role]
    kind: PrincipalKind = "user"
    job_id: str | None = None  # runtime principals act for this job only
    token_id: str | None = None
    client_id: str | None = None  # the API key a service token was exchanged for
    expires_at: float | None = None  # the token's `exp` (seconds since the epoch)

    def has_any(self, roles: frozenset[Role]) -> bool:
        return Role.ADMIN in self.roles or bool(self.roles & roles)

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.subject}"


ANONYMOUS_ADMIN = Principal("anonymous", frozenset(ALL_ROLES), kind="user")  # only when auth is disabled
