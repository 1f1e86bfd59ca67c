"""A real `flp` server (uvicorn on a free loopback port) in a background thread, for sync tests
such as fuzzers that drive it over HTTP; and the rebuild-equals-live check on a data dir."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from flp.server import running_server
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from projections.stream_faults import NAME as FAULTS


class LiveServer:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        fields: dict[str, Any] = {"flower_mode": "off", "rate_limit_per_minute": 0, "api_port": 0, **overrides}
        self.settings = Settings(data_dir=data_dir, **fields)
        self.url = ""
        self._started = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            async with running_server(self.settings) as srv:
                self.url = srv.url
                self._started.set()
                await asyncio.to_thread(self._stop.wait)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self._started.set()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        self._started.wait(120)
        if self._error is not None or not self.url:
            raise RuntimeError("the server did not start") from self._error
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)


async def rebuilt_and_live(data_dir: Path, scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every read model rebuilt from position 0 into a scratch store, next to the live ones (read
    from the data dir's read-model file): rebuilds must equal live runs."""
    store = await SqliteEventStore(data_dir / "flp.db").open()
    fresh = await SqliteReadModelStore(scratch).open()
    live = await SqliteReadModelStore(data_dir / "flp-read-models.db").open()
    try:
        names = [p.name for p in all_projections()] + [FAULTS]
        for name in names:
            await fresh.drop(name)
        await ProjectionRunner(fresh, all_projections()).catch_up(store)
        return {n: await fresh.dump(n) for n in names}, {n: await live.dump(n) for n in names}
    finally:
        await live.close()
        await fresh.close()
        await store.close()
