"""Signed audit bundles: a third party checks them offline with only the published public key;
truncating the tail, reordering or editing any line, or another key, is rejected with a reason."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from api.auth.principal import Role
from audit.signing import merkle_root, parse_public_key, public_key_of, sign_bundle, verify_signed_bundle
from config.settings import Settings
from flp.cli import app as cli
from persistence.encoding import canonical_json
from tests.auth.helpers import role_headers
from tests.conftest import job_body, round_body


async def signed_bundle(api: httpx.AsyncClient, settings: Settings) -> tuple[list[str], bytes]:
    assert (await api.post("/jobs", json=job_body(job_id="S", rounds=2))).status_code == 201
    for rnd in (1, 2):
        assert (await api.post("/jobs/S/rounds", json=round_body(rnd))).status_code == 200
    r = await api.get("/jobs/S/audit", headers=role_headers(settings, Role.AUDITOR))
    assert r.status_code == 200
    published = (await api.get("/audit/public-key", headers={"Authorization": ""})).json()
    assert published["alg"] == "ed25519" and "BEGIN PUBLIC KEY" in published["pem"]
    assert parse_public_key(published["pem"]) == bytes.fromhex(published["public_key"])
    return r.text.splitlines(), bytes.fromhex(published["public_key"])


async def test_a_signed_bundle_verifies_with_the_published_key(api: httpx.AsyncClient, settings: Settings) -> None:
    lines, public = await signed_bundle(api, settings)
    last = json.loads(lines[-1])
    assert last["kind"] == "signature" and last["leaves"] == len(lines) - 1
    assert last["merkle_root"] == merkle_root(lines[:-1])
    report = verify_signed_bundle(lines, public)
    assert report.ok, report.problems
    assert report.events == len([x for x in lines if '"kind":"event"' in x])


def _other_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


@pytest.mark.parametrize("tamper", ["truncate-tail", "drop-signature", "reorder", "edit", "wrong-key", "resigned"])
async def test_tampered_signed_bundles_are_rejected_with_a_reason(
    api: httpx.AsyncClient, settings: Settings, tamper: str
) -> None:
    lines, public = await signed_bundle(api, settings)
    expected = {
        "truncate-tail": "lines added or removed",
        "drop-signature": "no signature line",
        "reorder": "edited or reordered",
        "edit": "edited or reordered",
        "wrong-key": "not by the given public key",
        "resigned": "not by the given public key",
    }[tamper]
    check_key = public
    if tamper == "truncate-tail":  # drop the last event and everything after it but the signature
        forged = [*lines[:-5], lines[-1]]
    elif tamper == "drop-signature":
        forged = lines[:-1]
    elif tamper == "reorder":
        forged = [lines[0], lines[2], lines[1], *lines[3:]]
    elif tamper == "edit":
        forged = [lines[0], lines[1].replace('"job_id":"S"', '"job_id":"T"', 1), *lines[2:]]
    elif tamper == "wrong-key":
        forged = lines
        check_key = public_key_of(_other_key())
    else:  # an attacker edits, then re-signs the whole bundle with a key of their own
        docs = [json.loads(x) for x in lines[:-1]]
        docs[-2]["state"]["round"] = 99
        forged = sign_bundle([canonical_json(d) for d in docs], _other_key())
    report = verify_signed_bundle(forged, check_key)
    assert not report.ok
    assert any(expected in p for p in report.problems), report.problems


async def test_cli_verifies_offline_with_the_public_key(
    api: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    lines, public = await signed_bundle(api, settings)
    bundle, key = tmp_path / "S.ndjson", tmp_path / "flp-public-key.json"
    bundle.write_text("\n".join(lines) + "\n")
    key.write_text(json.dumps({"public_key": public.hex()}))

    def verify(*extra: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["audit", "verify-bundle", str(bundle), "--public-key", str(key), *extra])
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(verify)
    assert code == 0 and "signed by key" in out, out
    bundle.write_text("\n".join(lines[:-1]) + "\n")
    code, out = await asyncio.to_thread(verify)
    assert code == 1 and "no signature line" in out
    key.write_text("not a key")
    code, out = await asyncio.to_thread(verify)
    assert code == 2
