"""The roles a principal may hold: what each kind of user of the platform may do."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # users and everything else
    OPERATOR = "operator"  # start/cancel jobs, manage clients
    AUDITOR = "auditor"  # full history, time travel, verification, exports
    VIEWER = "viewer"  # dashboards and live streams
    INTEGRATOR = "integrator"  # the event feed and schemas
    RUNTIME = "runtime"  # the FL runtime, bound to one job


ALL_ROLES: tuple[Role, ...] = tuple(Role)


def parse_roles(values: list[str] | tuple[str, ...] | set[str] | frozenset[str]) -> frozenset[Role]:
    """Known roles only; raises ValueError naming an unknown one."""
    out: set[Role] = set()
    for v in values:
        try:
            out.add(Role(v))
        except ValueError:
            raise ValueError(f"unknown role {v!r}; known: {', '.join(ALL_ROLES)}") from None
    return frozenset(out)
