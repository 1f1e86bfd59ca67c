"""/fleet/nodes and `flp nodes`: registration by public key, bad input refused with nothing appended,
only fingerprints in events and read models, operators/admins only."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from commands.fleet import parse_public_key
from config.settings import Settings
from fl_runtime.pki import init_pki
from flp.cli import app as cli_app
from flp.wiring import Container
from tests.auth.helpers import role_headers
from tests.fleet.keys import ec_keypair, ed25519_public


async def _fleet_events(container: Container) -> list[dict[str, object]]:
    return [r.to_dict() for r in await container.store.read_stream("fleet")]


async def test_register_list_revoke(api: httpx.AsyncClient, container: Container, tmp_path: Path) -> None:
    _, pub = ec_keypair(tmp_path, "pi-1")
    key_text = pub.read_text()
    r = await api.post("/fleet/nodes", json={"name": "pi-1", "public_key": key_text, "reason": "lab bench"})
    assert r.status_code == 201, r.text
    fingerprint = r.json()["events"][0]["data"]["fingerprint"]
    assert fingerprint == parse_public_key(key_text).fingerprint
    assert await container.artifacts.get(fingerprint)  # the key, kept by its fingerprint for the SuperLink
    nodes = (await api.get("/fleet/nodes")).json()
    assert nodes["total"] == 1
    node = nodes["items"][0]
    assert (node["name"], node["status"], node["fingerprint"], node["registered_by"]) == (
        "pi-1",
        "registered",
        fingerprint,
        "admin",
    )
    r = await api.delete("/fleet/nodes/pi-1", params={"reason": "retired"})
    assert r.status_code == 200, r.text
    node = (await api.get("/fleet/nodes/pi-1")).json()
    assert (node["status"], node["revoked_reason"], node["revoked_by"]) == ("revoked", "retired", "admin")
    events = await _fleet_events(container)
    assert [ev["type"] for ev in events] == ["NodeRegistered", "NodeRevoked"]
    blob = repr(events) + repr(await container.read_models.dump("client_fleet"))
    body = key_text.split()[1]
    assert body not in blob and body[:40] not in blob  # never the key, only its fingerprint
    assert events[0]["metadata"]["actor"] == "admin"  # type: ignore[index]


async def test_bad_input_appends_nothing(api: httpx.AsyncClient, container: Container, tmp_path: Path) -> None:
    _, pub = ec_keypair(tmp_path, "pi-1")
    _, other = ec_keypair(tmp_path, "pi-2")
    pki = init_pki(tmp_path / "pki-data", ["localhost"])  # a certificate for another key
    cases = [
        ({"name": "x", "public_key": "ecdsa-sha2-nistp384 AAAAnot-base64"}, 422, "not a readable public key"),
        ({"name": "x", "public_key": ed25519_public()}, 422, "elliptic-curve"),
        ({"name": "x", "public_key": pki.server_key.read_text()}, 422, "another PEM object"),
        (
            {"name": "x", "public_key": pub.read_text(), "certificate": pki.server_cert.read_text()},
            422,
            "does not match",
        ),
        ({"name": "x", "public_key": pub.read_text(), "certificate": "junk"}, 422, "certificate"),
        ({"name": "bad name!", "public_key": pub.read_text()}, 422, "name"),
    ]
    for body, status, words in cases:
        r = await api.post("/fleet/nodes", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body.get("name"), r.text)
    assert await _fleet_events(container) == []
    r = await api.delete("/fleet/nodes/ghost")
    assert r.status_code == 404 and "not registered" in r.json()["detail"]
    assert (await api.post("/fleet/nodes", json={"name": "pi-1", "public_key": pub.read_text()})).status_code == 201
    dup_name = await api.post("/fleet/nodes", json={"name": "pi-1", "public_key": other.read_text()})
    dup_key = await api.post("/fleet/nodes", json={"name": "pi-9", "public_key": pub.read_text()})
    assert dup_name.status_code == 409 and "already registered" in dup_name.json()["detail"]
    assert dup_key.status_code == 409 and "already registered by node pi-1" in dup_key.json()["detail"]
    assert len(await _fleet_events(container)) == 1
    assert not await container.artifacts.exists(parse_public_key(other.read_text()).fingerprint)


async def test_a_matching_certificate_is_accepted(api: httpx.AsyncClient, tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki-data", ["localhost"])
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    public_pem = cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    body = {"name": "gw", "public_key": public_pem.decode(), "certificate": pki.server_cert.read_text()}
    r = await api.post("/fleet/nodes", json=body)
    assert r.status_code == 201, r.text
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert r.json()["events"][0]["data"]["fingerprint"] == hashlib.sha256(der).hexdigest()


async def test_only_operators_and_admins(api: httpx.AsyncClient, container: Container, tmp_path: Path) -> None:
    _, pub = ec_keypair(tmp_path, "pi-1")
    for role, allowed in (("viewer", False), ("auditor", False), ("operator", True)):
        headers = role_headers(container.settings, role)
        listed = await api.get("/fleet/nodes", headers=headers)
        assert (listed.status_code == 200) is allowed, (role, listed.status_code)
        body = {"name": f"n-{role}", "public_key": pub.read_text()} if allowed else {"name": "n", "public_key": "x"}
        added = await api.post("/fleet/nodes", json=body, headers=headers)
        assert (added.status_code == 201) is allowed, (role, added.text)


def test_cli_nodes(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mp = monkeypatch
    mp.setenv("FLP_DATA_DIR", str(settings.data_dir))
    mp.setenv("FLP_FLOWER_MODE", "off")
    _, pub = ec_keypair(tmp_path, "pi-1")
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    runner = CliRunner()
    added = runner.invoke(cli_app, ["nodes", "add", "pi-1", "--public-key", str(pub), "--reason", "lab"])
    assert added.exit_code == 0, added.output
    assert "registered, key fingerprint sha256:" in added.output
    refused = runner.invoke(cli_app, ["nodes", "add", "pi-2", "--public-key", str(bad)])
    assert refused.exit_code == 1 and "not a readable public key" in refused.output
    missing = runner.invoke(cli_app, ["nodes", "add", "pi-2", "--public-key", str(tmp_path / "nope.pub")])
    assert missing.exit_code == 2 and "cannot read" in missing.output
    listed = runner.invoke(cli_app, ["nodes", "list"])
    assert listed.exit_code == 0 and "pi-1" in listed.output and "registered" in listed.output
    removed = runner.invoke(cli_app, ["nodes", "remove", "pi-1", "--reason", "retired"])
    assert removed.exit_code == 0, removed.output
    unknown = runner.invoke(cli_app, ["nodes", "remove", "ghost"])
    assert unknown.exit_code == 1 and "not registered" in unknown.output
    assert "revoked" in runner.invoke(cli_app, ["nodes", "list"]).output


def test_pki_init(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    mp = monkeypatch
    mp.setenv("FLP_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(cli_app, ["pki", "init", "--host", "flp.example.org", "--json"])
    assert result.exit_code == 0, result.output
    pki = settings.data_dir / "pki"
    for key in ("ca.key", "superlink.key"):
        assert (pki / key).stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((pki / "superlink.pem").read_bytes())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "flp.example.org" in names.get_values_for_type(x509.DNSName)
    again = CliRunner().invoke(cli_app, ["pki", "init"])  # keeps the CA the SuperNodes trust
    assert again.exit_code == 0
    assert (pki / "ca.pem").read_bytes() == ca.public_bytes(serialization.Encoding.PEM)
