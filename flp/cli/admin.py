"""Admin and audit commands: `flp users`, `flp token`, `flp audit`, `flp job as-of|diff`."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from config.settings import Settings
from flp.cli.api_client import ApiError, FlpClient
from flp.cli.output import console, err_console, print_json
from flp.cli.proof import register as register_proof
from flp.cli.support import JsonOpt
from flp.cli.support import load_settings as _settings
from flp.cli.support import with_client as _with_client

users_app = typer.Typer(help="People who may use flp, and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="Access tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the history, export and check audit bundles.", no_args_is_help=True)
ROLE_HELP = "admin | operator | auditor | viewer | integrator (repeatable)"


# --- users ---------------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[list[str], typer.Option("--role", "-r", help=ROLE_HELP)],
    password_stdin: Annotated[bool, typer.Option(help="read the password from stdin (else one is generated)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a user with one or more roles. Without --password-stdin a password is generated and shown once."""
    body: dict[str, Any] = {"name": name, "roles": role}
    if password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    user = _with_client(lambda c: c.post("/users", body))
    if as_json:
        print_json(user)
        return
    console.print(f"user [bold]{user['name']}[/bold] added with roles {', '.join(user['roles'])}")
    if user.get("password"):
        console.print(f"password (shown once): {user['password']}")


@users_app.command("list")
def users_list(as_json: JsonOpt = False) -> None:
    """All users and their roles."""
    users = _with_client(lambda c: c.get("/users"))
    if as_json:
        print_json(users)
        return
    for u in users:
        console.print(f"{u['name']:<24} {','.join(u['roles']):<32} {'disabled' if u['disabled'] else ''}")


@users_app.command("remove")
def users_remove(name: str) -> None:
    """Remove a user; their tokens stop working."""
    _with_client(lambda c: c.request("DELETE", f"/users/{name}"))
    console.print(f"user [bold]{name}[/bold] removed")


# --- tokens --------------------------------------------------------------------------------------


@token_app.command("issue")
def token_issue(
    user: Annotated[str | None, typer.Option(help="a user of this data dir: a token with their roles")] = None,
    service: Annotated[str | None, typer.Option(help="a service name: a service token (needs --role)")] = None,
    role: Annotated[list[str] | None, typer.Option("--role", "-r", help=ROLE_HELP)] = None,
    job: Annotated[str | None, typer.Option(help="a runtime token bound to this job")] = None,
    ttl: Annotated[
        int | None, typer.Option(min=60, help="seconds (default FLP_JWT_TTL_SECONDS; 24h for runtime)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a token with this machine's key (FLP_JWT_SECRET, the data dir's secret, or the RS256 private key).
    Holding the signing key is what authorises this; use it as FLP_TOKEN or an Authorization: Bearer header."""
    from api.auth.principal import Role, parse_roles
    from api.auth.tokens import RUNTIME_TOKEN_TTL_SECONDS, issue_runtime_token, issue_token

    s = _settings()
    if sum(x is not None for x in (user, service, job)) != 1:
        err_console.print("[red]give exactly one of --user, --service, --job[/red]")
        raise typer.Exit(2)
    try:
        roles = parse_roles(role or [])
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if Role.RUNTIME in roles:
        err_console.print("[red]runtime tokens are issued with --job ID[/red]")
        raise typer.Exit(2)
    if job is not None:
        ttl = ttl or RUNTIME_TOKEN_TTL_SECONDS
        token, subject, held = issue_runtime_token(s, job, ttl_seconds=ttl), f"runtime:{job}", ["runtime"]
    elif user is not None:
        record = asyncio.run(_load_user(s, user))
        if record is None or record.disabled:
            err_console.print(f"[red]no enabled user {user!r} in {s.data_dir}[/red]")
            raise typer.Exit(1)
        granted = (roles & record.roles) if roles else record.roles
        ttl = ttl or s.jwt_ttl_seconds
        token, subject, held = issue_token(s, user, granted, ttl_seconds=ttl), user, sorted(granted)
    else:
        assert service is not None
        if not roles:
            err_console.print("[red]a service token needs at least one --role[/red]")
            raise typer.Exit(2)
        ttl = ttl or s.jwt_ttl_seconds
        subject = f"svc:{service}"
        token, held = issue_token(s, subject, roles, kind="service", ttl_seconds=ttl), sorted(roles)
    if as_json:
        print_json({"access_token": token, "token_type": "bearer", "expires_in": ttl, "sub": subject, "roles": held})
    else:
        print(token)


async def _load_user(settings: Settings, name: str) -> Any:
    from flp.wiring import open_user_store

    store = await open_user_store(settings)
    try:
        return await store.get_user(name)
    finally:
        await store.close()


# --- audit ---------------------------------------------------------------------------------------


def _print_report(report: dict[str, Any], what: str) -> None:
    brk = report.get("first_break")
    sealed = "hash chain, feed and seals" if report.get("sealed_checked") else "hash chain and feed (no seals)"
    if brk is None:
        console.print(
            f"[green]OK[/green] {what}: {report['events_checked']} events in {report['streams']} streams; {sealed}"
        )
    else:
        err_console.print(
            f"[red]BROKEN[/red] {what}: first broken link at stream {brk['stream_id']} version {brk['version']}"
            f" position {brk['position']}: {brk['reason']}"
        )


@audit_app.command("verify")
def audit_verify(
    job: Annotated[str | None, typer.Option(help="only this job's stream")] = None, as_json: JsonOpt = False
) -> None:
    """Recompute every stream's hash chain, the global feed's continuity and the seals. Exit 1 when broken."""
    path = f"/jobs/{job}/audit/verify" if job else "/audit/verify"
    report = _with_client(lambda c: c.get(path))
    if as_json:
        print_json(report)
    else:
        _print_report(report, f"job {job}" if job else "store")
    if not report["ok"]:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    job_id: str,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="file to write (default flp-audit-<job>.ndjson)")
    ] = None,
) -> None:
    """Write the job's self-contained NDJSON audit bundle."""

    async def fetch(c: FlpClient) -> str:
        response = await c.http.get(f"/jobs/{job_id}/audit")
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:300]}
            raise ApiError(response.status_code, problem)
        return response.text

    text = _with_client(fetch)
    target = out or Path(f"flp-audit-{job_id}.ndjson")
    target.write_text(text)
    console.print(f"wrote {target} ({len(text.splitlines())} lines)")


@audit_app.command("verify-bundle")
def audit_verify_bundle(
    file: Path,
    seal_key_file: Annotated[
        Path | None, typer.Option(help="also check the seals and the bundle HMAC with this key")
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="the platform's public key (PEM, hex or GET /audit/public-key's JSON): check the signature"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a bundle offline (no platform needed). Exit 1 when it does not verify."""
    from audit.bundles import verify_bundle
    from audit.signing import parse_public_key, verify_signed_bundle

    try:
        lines = file.read_text().splitlines()
        key = seal_key_file.read_bytes().strip() if seal_key_file else None
        public = parse_public_key(public_key.read_text()) if public_key else None
    except (OSError, ValueError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if public is not None:
        signed = verify_signed_bundle(lines, public, key)
        if as_json:
            print_json(signed.to_dict())
        elif signed.ok:
            console.print(
                f"[green]OK[/green] bundle of job {signed.job_id}: {signed.events} events; Merkle root"
                f" {str(signed.merkle_root)[:16]}… signed by key {signed.key_id} (Ed25519)"
            )
        else:
            for problem in signed.problems:
                err_console.print(f"[red]BROKEN[/red] {problem}")
        if not signed.ok:
            raise typer.Exit(1)
        return
    report = verify_bundle(lines, key)
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        seals = "; seals and HMAC verified" if report.seals_checked else " (seals not checked: no --seal-key-file)"
        head = report.chain_head or {}
        console.print(
            f"[green]OK[/green] bundle of job {report.job_id}: {report.events} events, chain head"
            f" v{head.get('version')} {str(head.get('hash'))[:16]}…{seals}"
        )
    else:
        for problem in report.problems:
            err_console.print(f"[red]BROKEN[/red] {problem}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("adopt-unsealed")
def audit_adopt_unsealed(
    yes: Annotated[bool, typer.Option("--yes", help="I trust the events that have no seal")] = False,
) -> None:
    """Seal events written before sealing was on (only if their hash chain verifies). Run it on the
    server's data dir while the server is stopped."""
    if not yes:
        err_console.print("[red]this vouches for every unsealed event; pass --yes if you trust them[/red]")
        raise typer.Exit(2)

    async def adopt() -> int:
        from audit.seal_mirror import adopt_unsealed
        from config.secrets import seal_key
        from flp.wiring import build_container

        s = _settings()
        container = await build_container(s, with_runtime=False)
        try:
            seals = container.audit.seals
            if seals is None:
                raise ValueError("sealing is off (FLP_AUDIT_SEAL=false)")
            return await adopt_unsealed(container.store, seals, seal_key(s))
        finally:
            await container.stop()

    try:
        count = asyncio.run(adopt())
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"sealed {count} events")


# --- time travel (registered under `flp job`) ----------------------------------------------------


def job_as_of(
    job_id: str,
    at: Annotated[str, typer.Option("--at", help="ISO 8601 timestamp (UTC when no zone)")],
    as_json: JsonOpt = False,
) -> None:
    """The job's state as of a moment."""
    result = _with_client(lambda c: c.get(f"/jobs/{job_id}/as-of", timestamp=at))
    if as_json:
        print_json(result)
    else:
        console.print(f"job {job_id} as of {at}: version {result['version']} (recorded {result['recorded_at']})")
        console.print(result["state"])


def job_diff(
    job_id: str,
    from_version: Annotated[int, typer.Option("--from", min=0, help="0 = before the job existed")] = 0,
    to_version: Annotated[int | None, typer.Option("--to", min=0, help="default: current")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What changed in the job between two versions, and which events changed it."""
    result = _with_client(lambda c: c.get(f"/jobs/{job_id}/diff", from_version=from_version, to_version=to_version))
    if as_json:
        print_json(result)
        return
    console.print(f"job {job_id}: version {result['from_version']} -> {result['to_version']}")
    for e in result["events"]:
        console.print(f"  v{e['version']:<4} {e['type']:<24} by {e['actor']} at {e['recorded_at']}")
    for ch in result["changes"]:
        console.print(f"  {ch['op']:<8} {ch['path']}: {json.dumps(ch['before'])} -> {json.dumps(ch['after'])}")


def register(app: typer.Typer, job_app: typer.Typer) -> None:
    """Add these commands to the `flp` app."""
    app.add_typer(users_app, name="users")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
    register_proof(audit_app)  # audit replay, ... (flp/cli/proof.py)
    job_app.command("as-of")(job_as_of)
    job_app.command("diff")(job_diff)
