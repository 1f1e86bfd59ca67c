"""`flp audit replay`: prove a job's model from its history (and the other proof commands)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from flp.cli.output import console, err_console, print_json
from flp.cli.support import JsonOpt
from flp.cli.support import with_client as _with_client


def _round_line(r: dict[str, Any]) -> str:
    status = r["status"]
    colour = {"match": "green", "diverged": "red"}.get(status, "yellow")
    line = f"round {r['round']:>3}  [{colour}]{status:<17}[/{colour}] recorded {str(r['recorded_sha256'])[:16]}…"
    if r.get("replayed_sha256") and r["replayed_sha256"] != r["recorded_sha256"]:
        line += f"  replayed {r['replayed_sha256'][:16]}…"
    if r.get("max_abs_diff") is not None and status == "diverged":
        line += f"  max abs diff {r['max_abs_diff']:.3g}"
    if r.get("reason"):
        line += f"  ({r['reason']})"
    return line


def audit_replay(job_id: str, as_json: JsonOpt = False) -> None:
    """Re-aggregate every round from the recorded client updates with the recorded strategy and
    compare each model's sha256 with the recorded one. Exit 0 only if every round matches."""
    report = _with_client(lambda c: c.get(f"/jobs/{job_id}/replay"))
    if as_json:
        print_json(report)
    else:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(report.get("versions", {}).items()))
        console.print(f"replay of job {job_id}: strategy {report.get('strategy')}; recorded with {versions}")
        for r in report["rounds"]:
            console.print(_round_line(r), highlight=False)
        if report["ok"]:
            console.print(f"[green]OK[/green] {report['reason']}")
        elif not report["re_executable"]:
            err_console.print(f"[yellow]NOT RE-EXECUTABLE[/yellow] {report['reason']}")
        else:
            err_console.print(f"[red]DIVERGED[/red] first diverging round {report['first_diverging_round']}")
    if not report["ok"]:
        raise typer.Exit(1)


def audit_lineage(
    job_id: str,
    fmt: Annotated[str, typer.Option("--format", click_type=click.Choice(["graph", "prov"]))] = "graph",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the document to this file")] = None,
) -> None:
    """The job's lineage: as a graph (nodes with the artifact / event each stands for) or W3C PROV-JSON."""
    doc = _with_client(lambda c: c.get(f"/jobs/{job_id}/lineage", format=fmt))
    text = json.dumps(doc, indent=2, sort_keys=True)
    if out is not None:
        out.write_text(text + "\n")
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


def audit_public_key(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the PEM to this file")] = None,
) -> None:
    """The platform's Ed25519 public key that signs audit bundles (PEM)."""
    doc = _with_client(lambda c: c.get("/audit/public-key"))
    if out is not None:
        out.write_text(doc["pem"])
        console.print(f"wrote {out} (key {doc['key_id']})")
    else:
        sys.stdout.write(doc["pem"])


def register(audit_app: typer.Typer) -> None:
    audit_app.command("replay")(audit_replay)
    audit_app.command("lineage")(audit_lineage)
    audit_app.command("public-key")(audit_public_key)
