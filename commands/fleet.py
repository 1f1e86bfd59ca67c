"""Fleet membership use cases: check a SuperNode's public key, keep it by its fingerprint, and
record NodeRegistered / NodeRevoked through the fleet decider.

Keys are the ones Flower's SuperNode authentication uses: elliptic-curve keys on a NIST curve
(`ssh-keygen -t ecdsa -b 256` gives an OpenSSH public key; PEM SubjectPublicKeyInfo is accepted
too). The fingerprint is the sha256 of the key's DER SubjectPublicKeyInfo, which is also its
address in the artifact store: events hold the fingerprint, never the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from commands.handlers import CommandContext, CommandHandler, CommandResult
from domain.fleet import FleetCommand, FleetState, RegisterNode, RevokeNode
from persistence.ports import ArtifactStore

NIST_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
MAX_KEY_TEXT = 16_384


class BadKey(ValueError):
    """A public key or certificate that cannot be used (named in the message, never echoed)."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    fingerprint: str
    der: bytes

    @property
    def pem(self) -> bytes:
        return serialization.load_der_public_key(self.der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def fingerprint_of_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def _load(data: bytes) -> object:
    text = data.strip()
    if text.startswith(b"-----BEGIN PUBLIC KEY-----"):
        return serialization.load_pem_public_key(text)
    if text.startswith(b"-----BEGIN"):
        raise BadKey("expected a public key, got another PEM object (a private key or a certificate?)")
    return serialization.load_ssh_public_key(text)


def parse_public_key(text: str | bytes) -> PublicKey:
    """The key as Flower's SuperNode authentication needs it, or BadKey saying why not."""
    data = text.encode() if isinstance(text, str) else text
    if not data.strip():
        raise BadKey("the public key is empty")
    if len(data) > MAX_KEY_TEXT:
        raise BadKey("the public key is too long")
    try:
        key = _load(data)
    except BadKey:
        raise
    except (ValueError, TypeError) as exc:
        raise BadKey("not a readable public key (OpenSSH or PEM)") from exc
    except Exception as exc:  # cryptography's UnsupportedAlgorithm
        raise BadKey("not a readable public key (unsupported key type)") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise BadKey("SuperNode keys must be elliptic-curve keys (ssh-keygen -t ecdsa -b 256)")
    if not isinstance(key.curve, NIST_CURVES):
        raise BadKey(f"curve {key.curve.name} is not an approved NIST curve")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(fingerprint_of_der(der), der)


def check_certificate(certificate_pem: str | bytes, key: PublicKey) -> None:
    """The certificate must be for exactly this public key."""
    data = certificate_pem.encode() if isinstance(certificate_pem, str) else certificate_pem
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise BadKey("not a readable PEM certificate") from exc
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if der != key.der:
        raise BadKey("the certificate does not match the public key")


async def register_node(
    fleet: CommandHandler[FleetCommand, FleetState],
    artifacts: ArtifactStore,
    name: str,
    public_key: str,
    *,
    reason: str = "",
    certificate: str | None = None,
    ctx: CommandContext,
) -> CommandResult:
    """Check the key (and certificate), keep the key by its fingerprint, record NodeRegistered."""
    key = parse_public_key(public_key)
    if certificate is not None:
        check_certificate(certificate, key)
    command = RegisterNode(name=name, fingerprint=key.fingerprint, actor=ctx.actor, reason=reason)
    _, state = await fleet.load("")
    fleet.aggregate.decide(command, state)  # refuse before storing anything
    stored = await artifacts.put(key.der)
    assert stored == key.fingerprint
    return await fleet.execute("", command, ctx)


async def revoke_node(
    fleet: CommandHandler[FleetCommand, FleetState], name: str, *, reason: str = "", ctx: CommandContext
) -> CommandResult:
    return await fleet.execute("", RevokeNode(name=name, actor=ctx.actor, reason=reason), ctx)
