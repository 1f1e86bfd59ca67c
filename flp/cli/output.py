"""Printing for the CLI: JSON for scripts, rich tables for people."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output (make, CI logs) is not a terminal: give tables room instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=None, sort_keys=True, default=str) + "\n")


def fmt_metrics(metrics: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(metrics.items()))


def job_board_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="Job board")
    for col in ("job", "name", "status", "round", "strategy", "clients", "latest metrics"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["job_id"],
            r["name"],
            r["status"],
            f"{r['round']}/{r['rounds']}",
            r["strategy"],
            str(len(r["clients"])),
            fmt_metrics(r.get("latest_metrics") or {}),
        )
    return table


def history_table(events: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("v", "pos", "type", "actor", "recorded at", "hash"):
        table.add_column(col)
    for e in events:
        meta = e["metadata"]
        table.add_row(
            str(e["version"]),
            str(e["position"]),
            e["type"],
            str(meta.get("actor", "")),
            str(meta.get("recorded_at", "")),
            e["hash"][:12],
        )
    return table
