"""Following the platform's live streams (Server-Sent Events, read with httpx-sse).

Each message names a read-model document: the first time a key is sent (and on every resume
with Last-Event-ID) it carries the whole document (`doc`); after that, each change carries only
what changed, as an RFC 6902 JSON Patch (`patch`) against the previous version. `LiveDocs` keeps
the documents current from such messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonpatch
from httpx_sse import aconnect_sse


@dataclass(frozen=True)
class SseMessage:
    id: str | None
    event: str | None
    data: Any


async def read_sse(
    http: httpx.AsyncClient, path: str, last_event_id: str | None = None, *, live: asyncio.Event | None = None
) -> AsyncIterator[SseMessage]:
    """The document messages of a live stream; `live` is set once the stream has caught up."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with aconnect_sse(http, "GET", path, headers=headers, timeout=None) as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            if event.event == "live":
                if live is not None:
                    live.set()
            elif event.data:
                yield SseMessage(event.id or None, event.event or None, json.loads(event.data))


@dataclass
class LiveDocs:
    """The current documents of one live stream, by key."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, message: SseMessage) -> dict[str, Any] | None:
        """Take one document message in; the document it leaves (None: deleted)."""
        key = str(message.data["key"])
        doc: dict[str, Any] | None
        if "doc" in message.data:
            doc = message.data["doc"]
        else:
            doc = jsonpatch.apply_patch(self.docs[key], message.data["patch"])
        if doc is None:
            self.docs.pop(key, None)
        else:
            self.docs[key] = doc
        return doc
