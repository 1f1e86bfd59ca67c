"""Rendering: the Jinja2 environment, formatting filters, and the view data built from read-model
documents (what the templates show; no store access here)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from domain.events import TERMINAL_STATUSES

HERE = Path(__file__).parent
ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
CENTRAL_ACCURACY = ("central_acc", "central_accuracy", "accuracy")


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(start: str | None, end: str | None) -> str:
    a, b = _parse(start), _parse(end)
    if a is None or b is None:
        return ""
    seconds = max(0.0, (b - a).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def metric(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def when(ts: str | None) -> str:
    """An ISO timestamp, shortened for a table cell (date and time to the second, UTC)."""
    return (ts or "").replace("T", " ").removesuffix("Z")[:19]


def central_accuracy(metrics: dict[str, Any]) -> Any:
    for name in CENTRAL_ACCURACY:
        if name in metrics:
            return metrics[name]
    return None


def series(detail: dict[str, Any]) -> dict[str, Any]:
    """The per-round metric series of a job (one point per completed round), for the chart."""
    points = []
    for entry in detail.get("rounds", []):
        if not entry.get("completed"):
            continue
        points.append(
            {
                "round": entry["round"],
                "central": entry.get("central_metrics", {}),
                "evaluate": entry.get("evaluate_metrics", {}),
                "train": entry.get("train_metrics", {}),
            }
        )
    return {"job_id": detail.get("job_id"), "rounds": detail.get("config", {}).get("rounds"), "points": points}


def series_json(detail: dict[str, Any]) -> str:
    """The series as JSON, for a data attribute (autoescaped: htmx drops swapped script blocks)."""
    return orjson.dumps(series(detail)).decode()


def terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


ENV.filters.update(duration=duration, metric=metric, short=short, when=when)
ENV.globals.update(central_accuracy=central_accuracy, series_json=series_json, terminal=terminal)


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)
