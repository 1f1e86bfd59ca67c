"""The global event feed: /events?after=<position>."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import StoreDep
from api.schemas import EventOut, EventPage

router = APIRouter(tags=["events"])


@router.get("/events", response_model=EventPage, summary="Every event after a global position, in order")
async def global_feed(
    store: StoreDep,
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventPage:
    events = await store.read_all(after, limit)
    return EventPage(items=[EventOut.of(e) for e in events], next=events[-1].position if events else None)
