"""The composition root: builds the platform from settings (ports bound to adapters) and owns
its background services. The only module that knows every layer."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from adapters.artifacts_fs import FsArtifactStore
from adapters.live_hub import LiveHub
from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_leases import SqliteLeaseStore
from adapters.sqlite_read_models import SqliteReadModelStore
from adapters.sqlite_users import SqliteUserStore
from api.auth.service import AuthService, open_auth
from audit.seal_mirror import SealMirror
from audit.trail import AuditTrail
from commands.handlers import CLIENT, FLEET, TRAINING_JOB, CommandHandler
from config.secrets import seal_key
from config.settings import Settings
from config.signing import signing_key
from domain.client import ClientState
from domain.commands import ClientCommand, JobCommand
from domain.fleet import FleetCommand, FleetState
from domain.training_job import JobState
from flp.exclusive import ExclusiveService, replica_id
from persistence.ports import ArtifactStore, EventStore, LeaseStore, Ownership, SealStore, UserStore
from persistence.seals import Sealer, sealer
from projections.ports import ReadModelStore
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from telemetry import tracing

if TYPE_CHECKING:
    from adapters.kafka_relay import KafkaRelay
    from fl_runtime.service import FlowerRuntime

log = logging.getLogger(__name__)
GC_FIRST_GENERATION = 50_000
GIL_SWITCH_INTERVAL_S = 0.0005
METRICS_REFRESH_S = 5.0


@dataclass
class BackgroundService:
    """A long-running task owned by the container (projection runner, relay, supervisor...)."""

    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]] | None = None
    info: Callable[[], dict[str, Any]] | None = None  # shown by the health endpoint
    leased: ExclusiveService | None = None  # run by the holder of its lease only


@dataclass
class Container:
    """Every part of the running platform, by its port; the optional parts are None when off."""

    settings: Settings
    store: EventStore
    read_models: ReadModelStore
    jobs: CommandHandler[JobCommand, JobState]
    clients: CommandHandler[ClientCommand, ClientState]
    projections: ProjectionRunner
    live: LiveHub
    auth: AuthService
    audit: AuditTrail
    artifacts: ArtifactStore
    leases: LeaseStore
    replica: str  # this replica's name in the leases
    fleet: CommandHandler[FleetCommand, FleetState]  # the SuperNodes let into the federation
    seal_mirror: SealMirror | None = None
    runtime: FlowerRuntime | None = None
    relay: KafkaRelay | None = None
    services: list[BackgroundService] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)  # called by stop()
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def exclusive(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        ownership: Ownership,
        *,
        standby: Callable[[], Coroutine[Any, Any, None]] | None = None,
        stop: Callable[[], Awaitable[None]] | None = None,
        on_lost: Callable[[], Awaitable[None]] | None = None,
        info: Callable[[], dict[str, Any]] | None = None,
    ) -> BackgroundService:
        """A service that runs on one replica at a time: the holder of its lease (flp.exclusive)."""
        leased = ExclusiveService(
            name, self.leases, self.replica, self.settings.lease_ttl_s, run, ownership, standby=standby, on_lost=on_lost
        )

        def described() -> dict[str, Any]:
            return {**leased.info(), **(info() if info is not None and leased.owned else {})}

        return BackgroundService(name, leased.run, stop, described, leased)

    async def start(self) -> None:
        """Copy any seals a crash left uncopied, catch the projections up, then start every
        background service."""
        if self.seal_mirror is not None:
            await self.seal_mirror.catch_up()
        await self.projections.catch_up(self.store)
        for service in self.services:
            self._tasks.append(asyncio.create_task(self._supervise(service), name=service.name))

    async def _supervise(self, service: BackgroundService) -> None:
        """Run the service; after a crash, run it again, backing off from 0.5 s to 30 s."""

        def crashed(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0.0
            log.error("service %s crashed; restarting in %.1fs", service.name, wait, exc_info=error)

        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=0.5, max=30.0),
            before_sleep=crashed,
        ):
            with attempt:
                await service.run()

    async def stop(self) -> None:
        for service in reversed(self.services):
            if service.stop is not None:
                try:
                    await service.stop()
                except Exception:
                    log.exception("stopping %s failed", service.name)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.seal_mirror is not None:  # a clean stop leaves no seal to copy at the next start
            try:
                await self.seal_mirror.catch_up()
            except Exception:
                log.exception("copying the last seals failed; the next start copies them")
        tracing.flush()
        for close in reversed(self.closers):
            await close()


def _mongo_url(settings: Settings) -> bool:
    return settings.resolved_store_url().startswith(("mongodb://", "mongodb+srv://"))


@dataclass
class Stores:
    """Every store of the platform, on one backend: SQLite files in the data dir (the default),
    or one MongoDB database reached through one connection pool (FLP_STORE_URL=mongodb://...),
    so that replicas on several machines share users, leases and seals as well as the events."""

    events: EventStore
    read_models: ReadModelStore
    users: UserStore
    leases: LeaseStore
    artifacts: ArtifactStore
    seals: SealStore | None
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()


async def open_all(settings: Settings, sealer: Sealer | None = None) -> Stores:
    url = settings.resolved_store_url()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        events = await SqliteEventStore(path, settings.sqlite_synchronous, sealer).open()
        rm_path = path.with_name(path.stem + "-read-models.db")
        read_models = await SqliteReadModelStore(rm_path).open()
        users = await SqliteUserStore(settings.data_dir / "users.db").open()
        leases = await SqliteLeaseStore(rm_path).open()
        seals: SealStore | None = None
        if settings.audit_seal:
            from adapters.sqlite_audit_seals import SqliteSealStore

            # NORMAL: the seal that makes an event acknowledged is in the event's own row (FULL); this
            # copy is re-made from those rows at the next start if a power cut takes its newest pages.
            seals = await SqliteSealStore(settings.data_dir / "audit-seals.db", "NORMAL").open()
        stores = Stores(events, read_models, users, leases, FsArtifactStore(settings.artifacts_dir), seals)
    elif _mongo_url(settings):
        from adapters.mongo_artifact_store import MongoArtifactStore
        from adapters.mongo_audit_seals import MongoSealStore
        from adapters.mongo_client import MongoConnection
        from adapters.mongo_event_store import MongoEventStore
        from adapters.mongo_leases import MongoLeaseStore
        from adapters.mongo_read_models import MongoReadModelStore
        from adapters.mongo_users import MongoUserStore

        connection = MongoConnection.from_settings(settings)  # one pool; closed with the last store
        artifacts = await MongoArtifactStore(connection).open()
        stores = Stores(
            await MongoEventStore(connection, sealer=sealer).open(),
            await MongoReadModelStore(connection).open(),
            await MongoUserStore(connection).open(),
            await MongoLeaseStore(connection).open(),
            artifacts,
            await MongoSealStore(connection).open() if settings.audit_seal else None,
        )
        stores.closers.append(artifacts.close)
    else:
        raise ValueError(f"unsupported FLP_STORE_URL {url!r}: expected sqlite:///PATH or mongodb://...")
    stores.closers += [stores.events.close, stores.read_models.close, stores.leases.close]
    if stores.seals is not None:
        stores.closers.append(stores.seals.close)
    return stores


async def open_stores(settings: Settings, sealer: Sealer | None = None) -> tuple[EventStore, ReadModelStore]:
    """Just the events and the read models (CLI tools, benchmarks)."""
    url = settings.resolved_store_url()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        store = await SqliteEventStore(path, settings.sqlite_synchronous, sealer).open()
        read_models = await SqliteReadModelStore(path.with_name(path.stem + "-read-models.db")).open()
        return store, read_models
    if _mongo_url(settings):
        from adapters.mongo_client import MongoConnection
        from adapters.mongo_event_store import MongoEventStore
        from adapters.mongo_read_models import MongoReadModelStore

        connection = MongoConnection.from_settings(settings)  # one client; closed with the last store
        return await MongoEventStore(connection, sealer=sealer).open(), await MongoReadModelStore(connection).open()
    raise ValueError(f"unsupported FLP_STORE_URL {url!r}: expected sqlite:///PATH or mongodb://...")


async def open_user_store(settings: Settings) -> UserStore:
    """The users and API keys alone (the admin CLI)."""
    if _mongo_url(settings):
        from adapters.mongo_client import MongoConnection
        from adapters.mongo_users import MongoUserStore

        return await MongoUserStore(MongoConnection.from_settings(settings)).open()
    return await SqliteUserStore(settings.data_dir / "users.db").open()


def tune_process() -> None:
    """Process-wide settings, made once here rather than toggled by the code that needs them.
    Decoding the feed allocates many small acyclic dicts; with CPython 3.11's default first-
    generation threshold (700) the cyclic collector runs every few events. Measured here (100k
    events decoded in batches of 2,000): 166k/s at the default, 268k/s at 50,000.
    The event loop gives the GIL away at every system call (socket sends, SQLite reads) and may
    then wait a whole switch interval (5 ms by default) while the store's threads run Python;
    a shorter interval hands it back sooner (POST /jobs under load: +15% at 0.5 ms)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    if gc.get_threshold()[0] < GC_FIRST_GENERATION:
        _, second, third = gc.get_threshold()
        gc.set_threshold(GC_FIRST_GENERATION, second, max(third, 100))


async def build_container(settings: Settings | None = None, *, with_runtime: bool = True) -> Container:
    """The platform's object graph. `with_runtime=False` leaves out the Flower runtime and the
    Kafka relay (for one-shot CLI commands against the data dir)."""
    tune_process()
    tracing.configure()  # OTEL_* variables decide; without an endpoint, nothing is installed
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = seal_key(settings) if settings.audit_seal else None
    stores = await open_all(settings, sealer(key) if key is not None else None)
    auth = await open_auth(settings, stores.users)
    live = LiveHub()
    runner = ProjectionRunner(stores.read_models, all_projections(), [live.publish])
    container = Container(
        settings=settings,
        store=stores.events,
        read_models=stores.read_models,
        jobs=CommandHandler(stores.events, TRAINING_JOB),
        clients=CommandHandler(stores.events, CLIENT),
        projections=runner,
        live=live,
        auth=auth,
        audit=AuditTrail(stores.events, stores.seals, key, signing_key(settings)),
        artifacts=stores.artifacts,
        leases=stores.leases,
        replica=settings.replica_id or replica_id(),
        fleet=CommandHandler(stores.events, FLEET),
    )
    container.closers += [auth.close, stores.close]
    container.services.append(
        container.exclusive(
            "projections",
            lambda: runner.run(stores.events),
            runner.ownership,
            standby=lambda: runner.follow(settings.follow_interval_s),
        )
    )
    if stores.seals is not None:
        mirror = SealMirror(stores.events, stores.seals)
        container.seal_mirror = mirror
        container.services.append(container.exclusive("seal_mirror", mirror.run, Ownership(), info=mirror.info))
    if with_runtime:
        _add_runtime_services(container)
    return container


def _add_metrics_listener(container: Container) -> None:
    """FLP_METRICS_PORT: /metrics on its own port (no credential: bind it to a private
    interface), with the state gauges refreshed every few seconds."""
    from prometheus_client import start_http_server

    from api.routes.health import refresh_gauges

    settings = container.settings
    assert settings.metrics_port is not None
    server, thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)

    async def refresh() -> None:
        while True:
            await refresh_gauges(container)
            await asyncio.sleep(METRICS_REFRESH_S)

    async def stop() -> None:
        server.shutdown()
        await asyncio.to_thread(thread.join, 5)

    container.services.append(BackgroundService("metrics_listener", refresh, stop=stop))


def _add_runtime_services(container: Container) -> None:
    """Optional services: the Flower job supervisor and the Kafka relay join here."""
    settings = container.settings
    if settings.metrics_port is not None:
        _add_metrics_listener(container)
    if settings.flower_mode != "off":
        from api.auth.tokens import issue_runtime_token
        from fl_runtime.service import FlowerRuntime

        runtime = FlowerRuntime(
            settings,
            container.store,
            container.jobs,
            container.read_models,
            token_for=lambda job_id: issue_runtime_token(settings, job_id),
        )
        container.runtime = runtime
        container.services.append(
            container.exclusive(
                "flower_runtime",
                runtime.run,
                runtime.ownership,
                stop=runtime.stop,
                on_lost=runtime.stop,
                info=runtime.info,
            )
        )
        if settings.flower_secured:  # SuperNode authentication: the fleet stream says who may connect
            from fl_runtime.fleet_sync import FleetSync

            sync = FleetSync(container.fleet, container.artifacts, lambda: runtime.control)
            container.services.append(BackgroundService("fleet_sync", sync.run, sync.stop, sync.info))
    if settings.kafka_bootstrap_servers:
        from adapters.kafka_relay import KafkaRelay

        relay = KafkaRelay(container.store, container.read_models, settings)
        container.relay = relay  # health: relay.info()["lag"]; exact: await relay.lag()
        container.services.append(
            container.exclusive("kafka_relay", relay.run, relay.ownership, stop=relay.stop, info=relay.info)
        )
