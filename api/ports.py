"""What the HTTP API needs of the running platform, typed part by part. The composition root
(`flp.wiring.Container`) provides it; each route depends on the parts it uses (api/deps.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from api.auth.service import AuthService
from audit.trail import AuditTrail
from commands.handlers import CommandHandler
from config.settings import Settings
from domain.client import ClientState
from domain.commands import ClientCommand, JobCommand
from domain.fleet import FleetCommand, FleetState
from domain.training_job import JobState
from persistence.ports import ArtifactStore, EventStore
from projections.ports import DocChange, ReadModelStore
from projections.runner import ProjectionRunner


class LiveSubscription(Protocol):
    async def get(self) -> list[DocChange] | None:
        """The subscribed changes not taken yet, in position order (waits for one); None: you
        fell behind, reconnect."""
        ...


class LiveFeed(Protocol):
    """Read-model changes fanned out to live subscribers, each to those of one projection (one
    document of it, with `key`)."""

    def subscribe(self, projection: str, key: str | None = None) -> LiveSubscription: ...

    def unsubscribe(self, sub: LiveSubscription) -> None: ...

    @property
    def subscriber_count(self) -> int: ...


class Service(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def info(self) -> Callable[[], dict[str, Any]] | None: ...


class Platform(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> EventStore: ...

    @property
    def read_models(self) -> ReadModelStore: ...

    @property
    def jobs(self) -> CommandHandler[JobCommand, JobState]: ...

    @property
    def clients(self) -> CommandHandler[ClientCommand, ClientState]: ...

    @property
    def fleet(self) -> CommandHandler[FleetCommand, FleetState]: ...

    @property
    def projections(self) -> ProjectionRunner: ...

    @property
    def live(self) -> LiveFeed: ...

    @property
    def auth(self) -> AuthService: ...

    @property
    def audit(self) -> AuditTrail: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def services(self) -> Sequence[Service]: ...

    @property
    def replica(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
