"""Secrets kept in files readable only by their owner (mode 0600), created on first use."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from config.settings import Settings


def write_private(path: Path, content: bytes) -> bool:
    """Create `path` with mode 0600 and write `content`; False (and nothing written) if it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.parent.name == "secrets":
        with contextlib.suppress(OSError):
            os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())
    return True


def load_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """The secret in `path` (hex), generated with `secrets` on first use. Races resolve to one value."""
    if not path.exists():
        write_private(path, secrets.token_hex(nbytes).encode())
    value = path.read_bytes().strip()
    if len(value) < 32:
        raise ValueError(f"secret in {path} is too short (need at least 32 characters)")
    return value


def seal_key_file(settings: Settings) -> Path:
    return settings.audit_seal_key_file or settings.data_dir / "secrets" / "audit-seal.key"


def seal_key(settings: Settings) -> bytes:
    """The HMAC key for seals; generated (mode 0600) on first use. Keep it off the store's host in
    production (FLP_AUDIT_SEAL_KEY_FILE on a separate volume or secret mount)."""
    return load_or_create_secret(seal_key_file(settings))


def metrics_token_file(settings: Settings) -> Path:
    """The bearer credential Prometheus scrapes /metrics with (its `credentials_file`)."""
    return settings.metrics_token_file or settings.data_dir / "secrets" / "metrics-token"
