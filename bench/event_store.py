"""Event store benchmark: append (one at a time and concurrent), replay, global feed, rebuild.

    python bench/event_store.py --streams 200 --events 100 --concurrency 64 [--store-url URL]

Prints one JSON line. Each command appends --batch events (default 5: a round report of four
client updates and its RoundCompleted) to one job stream with its expected version.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from adapters.mongo_client import drop_database, is_mongo_url, url_with_database
from commands.handlers import TRAINING_JOB, fold
from config.settings import Settings
from domain.events import ClientUpdateReceived, JobConfig, JobCreated
from flp.wiring import open_stores
from persistence.ports import EventStore
from persistence.records import NewEvent
from projections.registry import all_projections
from projections.runner import ProjectionRunner

META = {"actor": "bench", "correlation_id": "c", "causation_id": "c"}


def first_event(job: str) -> NewEvent:
    config = JobConfig(name=job, rounds=1000, min_clients=1, num_clients=4, runtime="external")
    return NewEvent.from_event(str(uuid.uuid4()), JobCreated(job_id=job, config=config), META)


def update(job: str, i: int) -> NewEvent:
    ev = ClientUpdateReceived(
        job_id=job, round=1 + i // 4, client_id=f"c{i % 4}", num_examples=100, metrics={"loss": 0.5}
    )
    return NewEvent.from_event(str(uuid.uuid4()), ev, META)


async def append_streams(store: EventStore, streams: list[str], events: int, batch: int, concurrency: int) -> float:
    """Append `events` per stream in commands of `batch` events; `concurrency` commands in flight."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for s in streams:
        queue.put_nowait(s)

    async def worker() -> None:
        while not queue.empty():
            stream = queue.get_nowait()
            job = stream.removeprefix("job-")
            version = 0
            pending = [first_event(job)] + [update(job, i) for i in range(events - 1)]
            for start in range(0, len(pending), batch):
                chunk = pending[start : start + batch]
                result = await store.append(stream, chunk, version)
                version = result.version

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(streams)))))
    return time.perf_counter() - t0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if is_mongo_url(url):  # a fresh database per run (named in the URL), dropped at the end
            url = url_with_database(url, f"flp_bench_{uuid.uuid4().hex[:8]}")
        settings = Settings(data_dir=Path(tmp), store_url=url)
        store, read_models = await open_stores(settings)
        try:
            total = args.streams * args.events
            serial_streams = [f"job-s{i}" for i in range(max(1, args.streams // 4))]
            serial_s = await append_streams(store, serial_streams, args.events, args.batch, 1)
            serial_events = len(serial_streams) * args.events
            conc_streams = [f"job-c{i}" for i in range(args.streams)]
            conc_s = await append_streams(store, conc_streams, args.events, args.batch, args.concurrency)

            t0 = time.perf_counter()
            for stream in conc_streams:
                fold(TRAINING_JOB, await store.read_stream(stream))
            replay_s = time.perf_counter() - t0

            t0 = time.perf_counter()
            position, read = 0, 0
            while batch := await store.read_all(position, 5000):
                read += len(batch)
                position = batch[-1].position
            read_s = time.perf_counter() - t0

            runner = ProjectionRunner(read_models, all_projections())
            t0 = time.perf_counter()
            await runner.rebuild(store)
            rebuild_s = time.perf_counter() - t0
        finally:
            await read_models.close()
            await store.close()
            if is_mongo_url(url):
                await drop_database(url)
    return {
        "store": url.split(":", 1)[0],
        "streams": args.streams,
        "events_per_stream": args.events,
        "events_per_command": args.batch,
        "concurrency": args.concurrency,
        "append_events_per_s_one_at_a_time": round(serial_events / serial_s),
        "append_events_per_s": round(total / conc_s),
        "replay_events_per_s": round(total / replay_s),
        "read_all_events_per_s": round(read / read_s),
        "projection_rebuild_events_per_s": round(read / rebuild_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=5, help="events per command")
    parser.add_argument(
        "--store-url", default=None, help="default: a fresh durable SQLite file; mongodb://... uses a fresh database"
    )
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
