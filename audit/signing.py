"""Signed audit bundles: a Merkle root over the bundle's lines and an Ed25519 signature over it,
so that a third party checks a bundle offline with nothing but the platform's public key.

The signature is the bundle's last line:
`{"kind": "signature", "alg": "ed25519", "merkle_root", "leaves", "key_id", "public_key", "signature"}`.
Leaves are sha256(0x00 || line) of every line before it (header, events, chain head, state,
digest), inner nodes sha256(0x01 || left || right), an odd node is carried up unchanged. The
signed message is the canonical JSON of {format, job_id, leaves, merkle_root}. Truncating the
tail, reordering or editing any line changes the root (or drops the signature line); a bundle
signed by another key fails against the published key. The HMAC seals stay for the platform's
own checks; the bundle's chain, digest and state are verified as before (`verify_bundle`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit.bundles import verify_bundle
from persistence.encoding import canonical_json

SIGNATURE_FORMAT = "flp-audit-bundle-signature/1"


def _leaf(line: str) -> bytes:
    return hashlib.sha256(b"\x00" + line.encode()).digest()


def merkle_root(lines: Sequence[str]) -> str:
    level = [_leaf(line) for line in lines]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def public_key_of(private_raw: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(private_raw)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def key_id(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_key_pem(public_raw: bytes) -> str:
    return (
        Ed25519PublicKey.from_public_bytes(public_raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def parse_public_key(text: str) -> bytes:
    """A public key given as PEM, or as 64 hex characters (raw), or as the JSON of GET /audit/public-key."""
    text = text.strip()
    if text.startswith("{"):
        text = str(json.loads(text).get("public_key", ""))
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raw = bytes.fromhex(text)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes (64 hex characters)")
    return raw


def _message(job_id: str, leaves: int, root: str) -> bytes:
    return canonical_json(
        {"format": SIGNATURE_FORMAT, "job_id": job_id, "leaves": leaves, "merkle_root": root}
    ).encode()


def sign_bundle(lines: list[str], private_raw: bytes) -> list[str]:
    """The bundle with its signature line appended."""
    job_id = str(json.loads(lines[0]).get("job_id"))
    root = merkle_root(lines)
    public = public_key_of(private_raw)
    signature = Ed25519PrivateKey.from_private_bytes(private_raw).sign(_message(job_id, len(lines), root))
    line = canonical_json(
        {
            "kind": "signature",
            "alg": "ed25519",
            "format": SIGNATURE_FORMAT,
            "merkle_root": root,
            "leaves": len(lines),
            "key_id": key_id(public),
            "public_key": public.hex(),
            "signature": signature.hex(),
        }
    )
    return [*lines, line]


@dataclass(slots=True)
class SignedBundleReport:
    ok: bool = False
    job_id: str | None = None
    merkle_root: str | None = None
    key_id: str | None = None
    events: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "job_id": self.job_id,
            "merkle_root": self.merkle_root,
            "key_id": self.key_id,
            "events": self.events,
            "problems": self.problems,
        }


def verify_signed_bundle(lines: Sequence[str], public_raw: bytes, seal_key: bytes | None = None) -> SignedBundleReport:
    """Check a signed bundle offline against the platform's public key; every problem has a reason."""
    report = SignedBundleReport(key_id=key_id(public_raw))
    rows = [line for line in (raw.rstrip("\r\n") for raw in lines) if line.strip()]
    try:
        last = json.loads(rows[-1]) if rows else None
    except ValueError:
        last = None
    if not isinstance(last, dict) or last.get("kind") != "signature":
        report.problems.append("the bundle has no signature line at its end (truncated, or exported unsigned)")
        return report
    body = rows[:-1]
    try:
        report.job_id = str(json.loads(body[0]).get("job_id")) if body else None
    except ValueError:
        report.job_id = None
    root = merkle_root(body)
    report.merkle_root = root
    if last.get("leaves") != len(body):
        report.problems.append(
            f"the signature covers {last.get('leaves')} lines, the bundle has {len(body)} (lines added or removed)"
        )
    if last.get("merkle_root") != root:
        report.problems.append("the Merkle root of the lines is not the signed one (a line was edited or reordered)")
    if last.get("public_key") != public_raw.hex():
        report.problems.append(f"signed by key {last.get('key_id')}, not by the given public key {report.key_id}")
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(
            bytes.fromhex(str(last.get("signature", ""))),
            _message(str(report.job_id), int(last.get("leaves", -1)), str(last.get("merkle_root"))),
        )
    except (InvalidSignature, ValueError):
        report.problems.append("the Ed25519 signature does not verify with the given public key")
    inner = verify_bundle(body, seal_key)
    report.events = inner.events
    report.problems.extend(inner.problems)
    report.ok = not report.problems
    return report
