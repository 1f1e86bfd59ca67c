"""The Client aggregate (a device in the fleet) as a decider."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from domain import commands as c
from domain import events as e
from domain.errors import DomainError, UnknownAggregate


def stream_id(client_id: str) -> str:
    return f"client-{client_id}"


@dataclass(frozen=True, slots=True)
class ClientState:
    client_id: str | None = None
    name: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    active: bool = False

    def to_dict(self, version: int) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "properties": dict(self.properties),
            "active": self.active,
            "version": version,
        }


INITIAL = ClientState()


def decide(command: c.ClientCommand, state: ClientState) -> list[e.Event]:
    match command:
        case c.RegisterClient(client_id=client_id, name=name, properties=properties):
            if state.active and state.name == name and state.properties == properties:
                return []
            if state.active:
                raise DomainError(f"client {client_id} is already registered with other details")
            return [e.ClientRegistered(client_id=client_id, name=name, properties=properties)]
        case c.LeaveFleet(reason=reason):
            if state.client_id is None:
                raise UnknownAggregate("client is not registered")
            if not state.active:
                raise DomainError(f"client {state.client_id} already left")
            return [e.ClientLeft(client_id=state.client_id, reason=reason)]
    raise TypeError(f"not a client command: {type(command).__name__}")  # pragma: no cover


def evolve(state: ClientState, event: e.Event) -> ClientState:
    match event:
        case e.ClientRegistered(client_id=client_id, name=name, properties=properties):
            return replace(state, client_id=client_id, name=name, properties=properties, active=True)
        case e.ClientLeft():
            return replace(state, active=False)
    return state
