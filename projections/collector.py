"""Fewer cyclic-GC passes while a replay builds read models in bulk.

A rebuild (or a catch-up after downtime) decodes events and builds documents that live until
it ends. With the collector's default thresholds (a young collection every 700 allocations),
the older generations are re-scanned again and again while they fill with exactly those
long-lived objects: ~25% of a rebuild's time here (`bench/event_store.py`). Raising the young
generation's threshold for the length of the replay keeps every pass the collector would make,
only less often. Nothing here does I/O or imports anything of ours: it only tunes the process's
collector, and puts back what it found when the last replay ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLD = 50_000  # allocations between young collections while a replay runs (default 700)
_active = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Nested and concurrent (in one thread, e.g. two tasks) replays share one setting; the
    thresholds found before the first are restored when the last one ends."""
    global _active, _saved
    if _active == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(max(BULK_THRESHOLD, _saved[0]), _saved[1], _saved[2])
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        if _active == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
