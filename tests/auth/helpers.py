"""Test helpers: bearer headers for any role, minted with the settings' signing key."""

from __future__ import annotations

from api.auth.principal import Role
from api.auth.service import ADMIN_USER
from api.auth.tokens import issue_runtime_token, issue_token
from config.settings import Settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_headers(settings: Settings) -> dict[str, str]:
    """The generated admin user's token (the container created that user on start)."""
    return bearer(issue_token(settings, ADMIN_USER, [Role.ADMIN], kind="user"))


def role_headers(
    settings: Settings, role: Role | str, *, subject: str | None = None, job_id: str | None = None
) -> dict[str, str]:
    """A service token holding one role (a runtime token, bound to `job_id`, for the runtime role)."""
    if Role(role) is Role.RUNTIME:
        return bearer(issue_runtime_token(settings, job_id or "job-under-test"))
    return bearer(issue_token(settings, subject or f"svc:test-{role}", [Role(role)], kind="service"))
