"""The browser session of the dashboard: a short-lived JWT in an HttpOnly, SameSite=Strict cookie
(EventSource cannot send an Authorization header, and a token in a URL lands in logs), and a CSRF
token bound to that session that every state-changing request sent with the cookie must carry in
the `X-CSRF-Token` header."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException

SESSION_COOKIE = "flp_session"
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_SECONDS = 30 * 60  # short-lived: log in again after half an hour
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token(session_token: str) -> str:
    """The CSRF token of one session: a hash of the session's JWT. Nothing is stored server-side;
    only who can read the HttpOnly cookie (the browser, not another site's script) can compute it,
    and the page showing it does not reveal the JWT."""
    return hashlib.sha256(b"flp-csrf\x00" + session_token.encode()).hexdigest()


class LoginRequired(HTTPException):
    """401 for a dashboard page without a valid session: the web layer answers it with a redirect
    to the login form."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, detail)


def check_csrf(session_token: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, csrf_token(session_token)):
        raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token) for a cookie session")
