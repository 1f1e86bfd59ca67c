"""Wakes feed subscribers when a commit moves the store's head: no sleep loops."""

from __future__ import annotations

import asyncio


class CommitSignal:
    """Tracks the newest committed position; `wait_beyond` returns once it passes a position.

    `fallback_s` bounds each wait so commits made by another process (which cannot notify
    this one) are still seen; in-process commits wake waiters immediately.
    """

    def __init__(self, fallback_s: float = 1.0) -> None:
        self.head = 0
        self._event = asyncio.Event()
        self._fallback_s = fallback_s

    def notify(self, head: int) -> None:
        if head > self.head:
            self.head = head
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_beyond(self, position: int) -> None:
        event = self._event
        if self.head > position:
            return
        try:  # asyncio.timeout, not wait_for: that wraps the wait in a task of its own each time
            async with asyncio.timeout(self._fallback_s):
                await event.wait()
        except TimeoutError:
            return
