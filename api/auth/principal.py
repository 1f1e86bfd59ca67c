"""Who is calling: the authenticated principal and the roles it holds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Role(StrEnum):
    ADMIN = "admin"  # users and everything else
    OPERATOR = "operator"  # start/cancel jobs, manage clients
    AUDITOR = "auditor"  # full history, time travel, verification, exports
    VIEWER = "viewer"  # dashboards and live streams
    INTEGRATOR = "integrator"  # the event feed and schemas
    RUNTIME = "runtime"  # the FL runtime, bound to one job


ALL_ROLES: tuple[Role, ...] = tuple(Role)
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

    def has_any(self, roles: frozenset[Role]) -> bool:
        return Role.ADMIN in self.roles or bool(self.roles & roles)

    @property
    def rate_key(self) -> str:
        return f"{self.kind}:{self.subject}"


ANONYMOUS_ADMIN = Principal("anonymous", frozenset(ALL_ROLES), kind="user")  # only when auth is disabled


def parse_roles(values: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> frozenset[Role]:
    """Known roles only; raises ValueError naming an unknown one."""
    out: set[Role] = set()
    for v in values:
        try:
            out.add(Role(v))
        except ValueError:
            raise ValueError(f"unknown role {v!r}; known: {', '.join(ALL_ROLES)}") from None
    return frozenset(out)
