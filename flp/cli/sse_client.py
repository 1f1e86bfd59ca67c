"""A minimal Server-Sent Events reader over httpx (used by the demo and tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: Any


async def read_sse(http: httpx.AsyncClient, path: str, last_event_id: str | None = None) -> AsyncIterator[SseMessage]:
    headers = {"Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    async with http.stream("GET", path, headers=headers, timeout=None) as response:
        response.raise_for_status()
        fields: dict[str, str] = {}
        data: list[str] = []
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield SseMessage(fields.get("id"), fields.get("event"), json.loads("\n".join(data)))
                fields, data = {}, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in ("id", "event"):
                fields[name] = value
