"""The edge fleet: `flp nodes add|remove|list` (SuperNodes let into the federation) and
`flp pki init` (the federation's CA and the SuperLink's TLS certificate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flp.cli.output import console, err_console, print_json
from flp.cli.support import JsonOpt
from flp.cli.support import load_settings as _settings
from flp.cli.support import with_client as _with_client

nodes_app = typer.Typer(help="SuperNodes allowed into the federation (by public key).", no_args_is_help=True)
pki_app = typer.Typer(help="The federation's CA and the SuperLink's TLS certificate.", no_args_is_help=True)


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        err_console.print(f"[red]cannot read the {what} {path}:[/red] {exc}")
        raise typer.Exit(2) from None


@nodes_app.command("add")
def nodes_add(
    name: str,
    public_key: Annotated[Path, typer.Option("--public-key", help="the node's EC public key (OpenSSH or PEM)")],
    certificate: Annotated[
        Path | None, typer.Option("--certificate", help="optional PEM certificate, must be for the same key")
    ] = None,
    reason: Annotated[str, typer.Option(help="why the device may join (kept in the fleet stream)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Register a SuperNode's public key: it may connect from the SuperLink's next check on."""
    body: dict[str, Any] = {"name": name, "public_key": _read(public_key, "public key"), "reason": reason}
    if certificate is not None:
        body["certificate"] = _read(certificate, "certificate")
    result = _with_client(lambda c: c.post("/fleet/nodes", body))
    if as_json:
        print_json(result)
        return
    fingerprint = result["events"][-1]["data"]["fingerprint"]
    console.print(f"node [bold]{name}[/bold] registered, key fingerprint sha256:{fingerprint}")


@nodes_app.command("remove")
def nodes_remove(
    name: str,
    reason: Annotated[str, typer.Option(help="why the device is revoked (kept in the fleet stream)")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Revoke a SuperNode: the SuperLink refuses it from then on."""
    result = _with_client(lambda c: c.request("DELETE", f"/fleet/nodes/{name}", params={"reason": reason}))
    if as_json:
        print_json(result)
        return
    console.print(f"node [bold]{name}[/bold] revoked")


@nodes_app.command("list")
def nodes_list(as_json: JsonOpt = False) -> None:
    """The fleet's SuperNodes: status, key fingerprint, last seen, jobs."""
    page = _with_client(lambda c: c.get("/fleet/nodes"))
    if as_json:
        print_json(page)
        return
    for n in page["items"]:
        jobs = ",".join(n["jobs"]) or "-"
        console.print(
            f"{n['name']:<24} {n['status']:<10} sha256:{n['fingerprint'][:16]}…  "
            f"last seen {n['last_seen_at'] or '-'}  jobs {jobs}"
        )


@pki_app.command("init")
def pki_init(
    host: Annotated[
        list[str] | None, typer.Option("--host", help="a name or IP SuperNodes use to reach the SuperLink (repeatable)")
    ] = None,
    force: Annotated[bool, typer.Option(help="also replace the CA (SuperNodes need the new ca.pem)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create the CA (kept if present) and the SuperLink's certificate in <data dir>/pki (keys 0600)."""
    from fl_runtime.pki import default_hosts, init_pki

    settings = _settings()
    extra = [*(host or []), *([settings.flower_host] if settings.flower_host not in ("0.0.0.0", "::") else [])]  # noqa: S104
    hosts = default_hosts(extra)
    paths = init_pki(settings.data_dir, hosts, force=force)
    out = {"ca_cert": str(paths.ca_cert), "server_cert": str(paths.server_cert), "hosts": hosts}
    if as_json:
        print_json(out)
        return
    console.print(f"CA certificate (give it to SuperNodes): {paths.ca_cert}")
    console.print(f"SuperLink certificate for {', '.join(hosts)}: {paths.server_cert}")


def register(app: typer.Typer) -> None:
    app.add_typer(nodes_app, name="nodes")
    app.add_typer(pki_app, name="pki")
