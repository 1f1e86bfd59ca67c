"""Event store benchmark: append (one at a time and concurrent), replay, global feed, rebuild,
each beside its anchor measured in the same run: raw SQLite one-row commits (WAL, FULL), a plain
SELECT + json.loads of the same rows, and (with --batch 1) the `eventsourcing` 9.5.6 peer.

    python bench/event_store.py --batch 1 --streams 200 --events 100 --concurrency 64
    python bench/event_store.py --streams 200 --events 100 --concurrency 64 [--store-url URL]

Prints one JSON line with the ratios and the goals. With --batch N (default 5: a round report
of four client updates and its RoundCompleted) each command appends N events to one job stream
with its expected version; with --batch 1 every command appends one event, as the peer's
commands do. "replay" loads every aggregate through the command handler with its state cache
warm (as the peer's aggregate cache is); "cold replay" folds every stream from its first event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from adapters.mongo_client import drop_database, is_mongo_url, url_with_database
from commands.handlers import TRAINING_JOB, CommandHandler, fold
from config.settings import Settings
from domain.events import ClientUpdateReceived, JobConfig, JobCreated
from flp.wiring import open_stores, tune_process
from persistence.ports import EventStore
from persistence.records import NewEvent
from persistence.seals import sealer
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


# --- the peer: the eventsourcing library on its SQLite persistence, aggregate cache on ----------


class Job(Aggregate):
    @event("Created")
    def __init__(self, name: str) -> None:
        self.name = name
        self.updates = 0

    @event("UpdateReceived")
    def record(self, client_id: str, num_examples: int, metrics: dict[str, float]) -> None:
        self.updates += 1


class Jobs(Application[uuid.UUID]):
    pass


def run_peer(path: Path, streams: int, events: int) -> dict[str, Any]:
    """Serial commands (one event each) on `streams` aggregates, then loading every aggregate."""
    os.environ.update(
        {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(path),
            "AGGREGATE_CACHE_MAXSIZE": "100000",
        }
    )
    app = Jobs()
    ids: list[uuid.UUID] = []
    t0 = time.perf_counter()
    for s in range(streams):
        job = Job(name=f"j{s}")
        app.save(job)
        for i in range(events - 1):
            job.record(client_id=f"c{i % 4}", num_examples=100, metrics={"loss": 0.5})
            app.save(job)
        ids.append(job.id)
    append_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for job_id in ids:
        app.repository.get(job_id)
    replay_s = time.perf_counter() - t0
    app.close()
    total = streams * events
    return {
        "append_events_per_s_one_at_a_time": round(total / append_s),
        "replay_events_per_s": round(total / replay_s),
    }


# --- the floors -------------------------------------------------------------------------------


def sqlite_floor(path: Path, commits: int, payload: str) -> float:
    """Raw SQLite, WAL + synchronous=FULL, one row per transaction: commits per second."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    t0 = time.perf_counter()
    for _ in range(commits):
        conn.execute("BEGIN")
        conn.execute("INSERT INTO t (data) VALUES (?)", (payload,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return commits / elapsed


def select_floor(path: Path) -> float:
    """A plain SELECT + json.loads of the event store's rows: rows per second."""
    conn = sqlite3.connect(path)
    t0 = time.perf_counter()
    n = 0
    for data, metadata in conn.execute("SELECT data, metadata FROM events ORDER BY position"):
        json.loads(data)
        json.loads(metadata)
        n += 1
    elapsed = time.perf_counter() - t0
    conn.close()
    return n / elapsed


async def run_flp(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    url = args.store_url or f"sqlite:///{tmp / 'bench.db'}"
    if is_mongo_url(url):  # a fresh database per run (named in the URL), dropped at the end
        url = url_with_database(url, f"flp_bench_{uuid.uuid4().hex[:8]}")
    settings = Settings(data_dir=tmp, store_url=url)
    store, read_models = await open_stores(settings, sealer(b"k" * 32))  # sealed, as in production
    try:
        out: dict[str, Any] = {"store": url.split(":", 1)[0], "events_per_command": args.batch}
        serial_streams = [f"job-s{i}" for i in range(max(1, args.streams // 4))]
        conc_streams = [f"job-c{i}" for i in range(args.streams)]
        serial_s = await append_streams(store, serial_streams, args.events, args.batch, 1)
        conc_s = await append_streams(store, conc_streams, args.events, args.batch, args.concurrency)
        handler = CommandHandler(store, TRAINING_JOB)
        for stream in conc_streams:  # commands ran through this handler: its cache holds their state
            await handler.load(stream[4:])
        t0 = time.perf_counter()
        for stream in conc_streams:  # the state of every aggregate, through the handler's cache
            await handler.load(stream[4:])
        out["replay_cached_events_per_s"] = round(len(conc_streams) * args.events / (time.perf_counter() - t0))
        total = args.streams * args.events
        out["append_events_per_s_one_at_a_time"] = round(len(serial_streams) * args.events / serial_s)
        out["append_events_per_s"] = round(total / conc_s)
        t0 = time.perf_counter()
        for stream in conc_streams:
            fold(TRAINING_JOB, await store.read_stream(stream))
        out["replay_events_per_s"] = round(total / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        position, read = 0, 0
        while batch := await store.read_all(position, 5000):
            read += len(batch)
            position = batch[-1].position
        out["read_all_events_per_s"] = round(read / (time.perf_counter() - t0))
        runner = ProjectionRunner(read_models, all_projections())
        t0 = time.perf_counter()
        await runner.rebuild(store)
        out["projection_rebuild_events_per_s"] = round(read / (time.perf_counter() - t0))
    finally:
        await read_models.close()
        await store.close()
        if is_mongo_url(url):
            await drop_database(url)
    if not is_mongo_url(url):
        out["floor_select_json_rows_per_s"] = round(select_floor(tmp / "bench.db"))
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        payload = json.dumps(update("j", 1).data)
        floor = sqlite_floor(root / "floor.db", args.floor_commits, payload)
        (root / "flp").mkdir()
        result: dict[str, Any] = {
            "streams": args.streams,
            "events_per_stream": args.events,
            "concurrency": args.concurrency,
            "floor_sqlite_commits_per_s": round(floor),
            "flp": await run_flp(args, root / "flp"),
        }
        flp = result["flp"]
        ratios: dict[str, float] = {
            "serial_append_vs_floor": flp["append_events_per_s_one_at_a_time"] / args.batch / floor,
            "concurrent_append_vs_floor": flp["append_events_per_s"] / floor,
        }
        if "floor_select_json_rows_per_s" in flp:
            ratios["rebuild_vs_select"] = flp["projection_rebuild_events_per_s"] / flp["floor_select_json_rows_per_s"]
        if args.peer and args.batch == 1:
            peer = await asyncio.to_thread(run_peer, root / "peer.db", max(1, args.streams // 4), args.events)
            result["peer_eventsourcing"] = peer
            ratios["peer_serial_append_vs_floor"] = peer["append_events_per_s_one_at_a_time"] / floor
            ratios["replay_vs_peer"] = flp["replay_cached_events_per_s"] / peer["replay_events_per_s"]
            ratios["cold_replay_vs_peer"] = flp["replay_events_per_s"] / peer["replay_events_per_s"]
        result["ratios"] = {k: round(v, 2) for k, v in ratios.items()}
        result["goals"] = {
            "serial_append_vs_floor": 0.75,
            "concurrent_append_vs_floor": 6.0,
            "replay_vs_peer": 3.0,
            "rebuild_vs_select": 0.3,
        }
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--batch", type=int, default=5, help="events per command (1: one-event commands via the handler)"
    )
    parser.add_argument("--floor-commits", type=int, default=3000, help="raw SQLite one-row commits for the floor")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the eventsourcing peer")
    parser.add_argument(
        "--store-url", default=None, help="default: a fresh durable SQLite file; mongodb://... uses a fresh database"
    )
    args = parser.parse_args()
    # The process settings every flp process runs with (the collector's threshold, the GIL's
    # switch interval): without them this bench measured a rebuild ~20% slower than `flp serve`
    # and `flp projections rebuild` run it. The peer and the floors run in the same process.
    tune_process()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
