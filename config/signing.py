"""The platform's Ed25519 audit signing key: created on first use (PKCS#8 PEM, mode 0600) in
`<data dir>/secrets/audit-signing.key`; its public half is published at `GET /audit/public-key`."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from config.secrets import write_private
from config.settings import Settings


def signing_key_file(settings: Settings) -> Path:
    return settings.data_dir / "secrets" / "audit-signing.key"


def signing_key(settings: Settings) -> bytes:
    """The raw 32-byte private key; generated on first use (concurrent first uses agree: the
    file is created exclusively and read back)."""
    path = signing_key_file(settings)
    if not path.exists():
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
