"""Live push by Server-Sent Events. Each message's id is the position of the event that caused
the change; reconnecting with Last-Event-ID first replays every document changed since (whole
documents), then an `event: live` message says the stream is caught up, then each change follows
as a JSON Patch against the version the client has."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from sse_starlette import ServerSentEvent

from api.deps import LiveDep, ReadModelsDep
from api.errors import NotFound
from api.ports import LiveFeed
from api.responses import LiveStream
from api.routes.jobs import JobId
from projections.ports import DocChange, ReadModelStore
from telemetry import tracing

router = APIRouter(prefix="/live", tags=["live"])
LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)]


SEP = LiveStream.DEFAULT_SEPARATOR
MESSAGE = f'id: %d{SEP}event: %b{SEP}data: {{"key":%b,"%b":%b}}{SEP}{SEP}'.encode()
CHUNK_BYTES = 64 * 1024  # a replay is sent in chunks of about this size


def _message(change: DocChange, whole: bool) -> bytes:
    """The whole document the first time a key is sent on this connection, then only what changed.
    Encoded as ServerSentEvent would (JSON is one line, so one `data:` line), once per change for
    every subscriber (`DocChange.frames`): building it per subscriber was ~1.5 us each, and with
    100 subscribers and several changes a batch, a twentieth of the loop under full load."""
    patch = None if whole else change.patch_json
    frame = change.frames.get(patch is None)
    if frame is None:
        field, value = (b"doc", change.doc_json) if patch is None else (b"patch", patch)
        frame = MESSAGE % (change.position, change.projection.encode(), orjson.dumps(change.key), field, value)
        change.frames[patch is None] = frame
    return frame


def _resume_from(header: str | None, query: int | None) -> int:
    if query is not None:
        return query
    if header and header.isdigit():
        return int(header)
    return 0


async def _stream(
    live: LiveFeed, read_models: ReadModelStore, projection: str, key: str | None, after: int
) -> AsyncIterator[bytes | ServerSentEvent]:
    """The messages of each batch of changes go out as one chunk: one send through the
    middleware stack and one socket write per batch and subscriber, not per message."""
    sub = live.subscribe(projection, key)
    try:
        sent = after
        known: set[str] = set()  # keys whose whole document this client was sent (or had at `after`)
        chunk: list[bytes] = []
        size = 0
        for missed in await read_models.changed_after(projection, after, key):
            message = _message(missed, whole=True)
            chunk.append(message)
            size += len(message)
            known.add(missed.key)
            sent = max(sent, missed.position)
            if size >= CHUNK_BYTES:
                yield b"".join(chunk)
                chunk, size = [], 0
        if chunk:
            yield b"".join(chunk)
        # caught up: what follows is live (a client may show "live", a test may start writing)
        yield ServerSentEvent(data=orjson.dumps({"position": sent}).decode(), event="live")
        while True:  # until sse-starlette, which listens for the disconnect, cancels us in `get`
            changes = await sub.get()  # (asking `request.is_disconnected()` per batch cost a cancel scope each)
            if changes is None:
                return  # too slow: the client reconnects with Last-Event-ID
            chunk = []
            # a span only continues a command's trace (asking the API costs ~0.9 us, an environment
            # lookup, per subscriber and batch: 100 subscribers made it ~90 us per command)
            recording = any(change.traceparent for change in changes) and tracing.recording()
            for change in changes:
                if change.position <= sent:
                    continue
                whole = after == 0 and change.key not in known
                if recording:
                    with tracing.tracer().start_as_current_span(
                        "sse.send",
                        context=tracing.context_from(change.traceparent),
                        attributes={"flp.projection": change.projection, "flp.position": change.position},
                    ):
                        chunk.append(_message(change, whole))
                else:
                    chunk.append(_message(change, whole))
                known.add(change.key)
                sent = change.position
            if chunk:
                yield b"".join(chunk)
    finally:
        live.unsubscribe(sub)


@router.get("/jobs", summary="Job board changes as they happen (SSE)")
async def live_jobs(
    live: LiveDep,
    rm: ReadModelsDep,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=0, le=2**53, description="like Last-Event-ID")] = None,
) -> LiveStream:
    start = _resume_from(last_event_id, after)
    return LiveStream(_stream(live, rm, "job_board", None, start), ping=10)


@router.get("/jobs/{job_id}", summary="One job's detail changes as they happen (SSE)")
async def live_job(
    job_id: JobId,
    live: LiveDep,
    rm: ReadModelsDep,
    last_event_id: LastEventId = None,
    after: Annotated[int | None, Query(ge=0, le=2**53, description="like Last-Event-ID")] = None,
) -> LiveStream:
    if await rm.get("job_detail", job_id) is None:
        raise NotFound(f"job {job_id} not found")
    start = _resume_from(last_event_id, after)
    return LiveStream(_stream(live, rm, "job_detail", job_id, start), ping=10)
