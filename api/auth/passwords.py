"""Password hashing with Argon2 (pwdlib). Unknown users cost the same as wrong passwords."""

from __future__ import annotations

import secrets

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

_HASHER = PasswordHash((Argon2Hasher(),))
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
MIN_PASSWORD_LENGTH = 12


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when `password` matches. With no hash (unknown user) a dummy hash is checked so the
    answer takes as long as for a real user and reveals nothing."""
    if password_hash is None:
        _HASHER.verify(password, _DUMMY_HASH)
        return False
    try:
        return _HASHER.verify(password, password_hash)
    except Exception:  # malformed stored hash: never a match
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def generate_secret() -> str:
    return secrets.token_urlsafe(32)
