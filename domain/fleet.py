"""The fleet (the SuperNodes allowed into the federation) as a decider, on one stream `fleet`.

A node is a name plus the fingerprint of its public key; the key itself is kept outside the
events (content-addressed by that fingerprint), so events, logs and read models hold only
fingerprints. A revoked key never comes back: a revoked device rejoins with a new key pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import ConfigDict, Field

from domain import events as e
from domain.errors import DomainError, UnknownAggregate
from domain.values import EntityId, Sha256Hex, Text, Valued

STREAM_ID = "fleet"
NodeStatus = Literal["registered", "connected", "revoked"]


def stream_id(_: str = "") -> str:
    return STREAM_ID


class FleetCommand(Valued):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RegisterNode(FleetCommand):
    name: EntityId
    fingerprint: Sha256Hex
    actor: Text = Field(min_length=1, max_length=200)
    reason: Text = Field(default="", max_length=2000)


class RevokeNode(FleetCommand):
    name: EntityId
    actor: Text = Field(min_length=1, max_length=200)
    reason: Text = Field(default="", max_length=2000)


class RecordNodeConnected(FleetCommand):
    """The fleet process manager saw the node's key online on the SuperLink."""

    fingerprint: Sha256Hex
    flower_node_id: str = Field(pattern=r"^[0-9]{1,20}$")


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    fingerprint: str
    status: NodeStatus = "registered"
    flower_node_id: str | None = None


@dataclass(frozen=True, slots=True)
class FleetState:
    nodes: dict[str, Node] = field(default_factory=dict)  # by name; revoked ones stay
    used_fingerprints: frozenset[str] = frozenset()  # every key ever registered

    def active(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.status != "revoked"]

    def by_fingerprint(self, fingerprint: str) -> Node | None:
        return next((n for n in self.nodes.values() if n.fingerprint == fingerprint), None)


INITIAL = FleetState()


def decide(command: FleetCommand, state: FleetState) -> list[e.Event]:
    match command:
        case RegisterNode(name=name, fingerprint=fp, actor=actor, reason=reason):
            current = state.nodes.get(name)
            if current is not None and current.status != "revoked":
                raise DomainError(f"node {name} is already registered (key {current.fingerprint[:16]}…)")
            if fp in state.used_fingerprints:
                holder = state.by_fingerprint(fp)
                who = f" by node {holder.name}" if holder is not None else ""
                raise DomainError(f"this public key was already registered{who}; a device needs its own, new key")
            return [e.NodeRegistered(name=name, fingerprint=fp, actor=actor, reason=reason)]
        case RevokeNode(name=name, actor=actor, reason=reason):
            current = state.nodes.get(name)
            if current is None:
                raise UnknownAggregate(f"node {name} is not registered")
            if current.status == "revoked":
                raise DomainError(f"node {name} is already revoked")
            return [e.NodeRevoked(name=name, fingerprint=current.fingerprint, actor=actor, reason=reason)]
        case RecordNodeConnected(fingerprint=fp, flower_node_id=node_id):
            node = state.by_fingerprint(fp)
            if node is None or node.status == "revoked" or node.flower_node_id == node_id:
                return []
            return [e.NodeConnected(name=node.name, fingerprint=fp, flower_node_id=node_id)]
    raise TypeError(f"not a fleet command: {type(command).__name__}")  # pragma: no cover


def evolve(state: FleetState, event: e.Event) -> FleetState:
    match event:
        case e.NodeRegistered(name=name, fingerprint=fp):
            nodes = {**state.nodes, name: Node(name, fp)}
            return replace(state, nodes=nodes, used_fingerprints=state.used_fingerprints | {fp})
        case e.NodeRevoked(name=name):
            node = state.nodes[name]
            return replace(state, nodes={**state.nodes, name: replace(node, status="revoked")})
        case e.NodeConnected(name=name, flower_node_id=node_id):
            node = replace(state.nodes[name], status="connected", flower_node_id=node_id)
            return replace(state, nodes={**state.nodes, name: node})
    return state
