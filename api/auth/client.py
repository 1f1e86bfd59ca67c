"""Credentials for the CLI and the demo: which bearer token to send."""

from __future__ import annotations

import httpx

from api.auth.principal import Role
from api.auth.service import admin_credentials_file, read_admin_credentials
from api.auth.tokens import issue_token, jwt_secret_file
from config.settings import Settings


def can_sign_locally(settings: Settings) -> bool:
    if settings.jwt_algorithm == "RS256":
        return settings.jwt_private_key_file is not None and settings.jwt_private_key_file.exists()
    return settings.jwt_secret is not None or jwt_secret_file(settings).exists()


def cli_token(settings: Settings) -> str | None:
    """FLP_TOKEN when set. Otherwise, with the admin credential file of the data dir at hand
    (`admin-credentials.json`, mode 0600): a token signed locally when this machine holds the
    signing key (the embedded default), else one from the server's token endpoint."""
    if settings.token is not None and settings.token.get_secret_value():
        return settings.token.get_secret_value()
    if not settings.auth_enabled:
        return None
    creds = read_admin_credentials(settings)
    if creds is None:
        return None
    username = str(creds.get("username", ""))
    if can_sign_locally(settings) and not settings.api_url:
        return issue_token(settings, username, [Role.ADMIN], kind="user")
    if settings.api_url:
        try:
            response = httpx.post(
                f"{settings.api_url.rstrip('/')}/auth/token",
                data={"grant_type": "password", "username": username, "password": str(creds.get("password", ""))},
                timeout=30.0,
            )
        except httpx.TransportError:
            return None  # the request itself will report the unreachable server
        if response.status_code == 200:
            return str(response.json()["access_token"])
        if can_sign_locally(settings):
            return issue_token(settings, username, [Role.ADMIN], kind="user")
    return None


def credentials_hint(settings: Settings) -> str:
    return f"admin credential: {admin_credentials_file(settings).resolve()} (mode 0600; FLP_TOKEN overrides)"
