"""`flp audit replay`: prove a job's model from its history (and the other proof commands)."""

from __future__ import annotations

from typing import Any

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


def register(audit_app: typer.Typer) -> None:
    audit_app.command("replay")(audit_replay)
