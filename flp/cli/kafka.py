"""CLI commands for the Kafka integration (registered in flp/cli.py):

flp events consume [--from-beginning] [--group G] [--no-dedupe] [--kafka-meta] [--limit N]
flp project --source kafka|store [--group G] [--from-beginning]
flp relay
flp schema export DIR
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer
from aiokafka.errors import KafkaError

from config.settings import Settings

schema_app = typer.Typer(help="Published schemas for integrators.", no_args_is_help=True)


def _settings(need_kafka: bool = True) -> Settings:
    try:
        settings = Settings()
    except Exception as exc:  # invalid FLP_ variables
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
    if need_kafka and not settings.kafka_bootstrap_servers:
        typer.echo("FLP_KAFKA_BOOTSTRAP_SERVERS is not set", err=True)
        raise typer.Exit(2)
    return settings


def consume(
    from_beginning: Annotated[bool, typer.Option("--from-beginning", help="start at the oldest message")] = False,
    group: Annotated[str | None, typer.Option(help="consumer group (commits offsets); default: none")] = None,
    dedupe: Annotated[bool, typer.Option(help="drop re-sent duplicates (by position per key)")] = True,
    kafka_meta: Annotated[bool, typer.Option("--kafka-meta", help="wrap each event with partition/offset")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="exit after this many events")] = None,
    idle_exit: Annotated[float | None, typer.Option(help="exit after this many seconds without messages")] = None,
) -> None:
    """Print the Kafka topic's events as JSON lines (CloudEvents), as an integrator sees them."""
    from adapters.kafka_consumer import consume_events

    settings = _settings()

    async def go() -> None:
        count = 0
        events = consume_events(
            settings, from_beginning=from_beginning, group=group, dedupe=dedupe, idle_timeout_s=idle_exit
        )
        async for event in events:
            sys.stdout.write(orjson.dumps(event.as_json(kafka_meta)).decode() + "\n")
            sys.stdout.flush()
            count += 1
            if limit is not None and count >= limit:
                break
        await events.aclose()  # type: ignore[attr-defined]

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(go())
    except (LookupError, KafkaError) as exc:
        typer.echo(f"cannot read {settings.kafka_topic} from {settings.kafka_bootstrap_servers}: {exc}", err=True)
        raise typer.Exit(1) from None


class Source(StrEnum):
    store = "store"
    kafka = "kafka"


def project(
    source: Annotated[Source, typer.Option(help="feed: the event store, or the Kafka topic")] = Source.store,
    group: Annotated[str, typer.Option(help="consumer group of the Kafka-fed worker")] = "flp-projections",
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Kafka: re-read the topic (duplicates are skipped)")
    ] = False,
) -> None:
    """Run the projections as a worker (until interrupted), fed from the store or from Kafka."""
    from flp.wiring import open_stores
    from projections.registry import all_projections
    from projections.runner import ProjectionRunner

    settings = _settings(need_kafka=source is Source.kafka)

    async def go() -> None:
        store, read_models = await open_stores(settings)
        try:
            if source is Source.store:
                await ProjectionRunner(read_models, all_projections()).run(store)
            else:
                from adapters.kafka_projection_source import KafkaProjectionWorker

                worker = KafkaProjectionWorker(read_models, settings, group=group, from_beginning=from_beginning)
                await worker.run()
        finally:
            await read_models.close()
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


def relay() -> None:
    """Run only the Kafka relay (store -> topic) until interrupted; `flp serve` runs it too."""
    from adapters.kafka_relay import KafkaRelay
    from flp.wiring import open_stores

    settings = _settings()

    async def go() -> None:
        store, read_models = await open_stores(settings)
        try:
            await KafkaRelay(store, read_models, settings).run()
        finally:
            await read_models.close()
            await store.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


@schema_app.command("export")
def schema_export(
    directory: Annotated[Path, typer.Argument(help="output directory (created if missing)")],
    topic: Annotated[str | None, typer.Option(help="topic named in the AsyncAPI document")] = None,
) -> None:
    """Write a JSON Schema per event type and version (events/*.json) and asyncapi.json."""
    from adapters.kafka_schemas import export_schemas

    written = export_schemas(directory, topic or _settings(need_kafka=False).kafka_topic)
    for path in written:
        typer.echo(str(path))


def register(app: typer.Typer, events_app: typer.Typer) -> None:
    """Add the Kafka commands to the `flp` app and its `events` group."""
    events_app.command("consume")(consume)
    app.command("project")(project)
    app.command("relay")(relay)
    app.add_typer(schema_app, name="schema")
