"""The fleet decider: who may join, revocation, a key never reused."""

from __future__ import annotations

import pytest

from domain import events as e
from domain.errors import DomainError, UnknownAggregate
from domain.fleet import INITIAL, FleetState, RecordNodeConnected, RegisterNode, RevokeNode, decide, evolve

FP_A, FP_B = "a" * 64, "b" * 64


def run(state: FleetState, *commands: object) -> FleetState:
    for command in commands:
        for event in decide(command, state):  # type: ignore[arg-type]
            state = evolve(state, event)
    return state


def test_register_revoke_connect() -> None:
    events = decide(RegisterNode(name="pi-1", fingerprint=FP_A, actor="ops", reason="lab"), INITIAL)
    assert events == [e.NodeRegistered(name="pi-1", fingerprint=FP_A, actor="ops", reason="lab")]
    state = run(INITIAL, RegisterNode(name="pi-1", fingerprint=FP_A, actor="ops"))
    connected = decide(RecordNodeConnected(fingerprint=FP_A, flower_node_id="123"), state)
    assert connected == [e.NodeConnected(name="pi-1", fingerprint=FP_A, flower_node_id="123")]
    state = run(state, RecordNodeConnected(fingerprint=FP_A, flower_node_id="123"))
    assert state.nodes["pi-1"].status == "connected"
    assert decide(RecordNodeConnected(fingerprint=FP_A, flower_node_id="123"), state) == []  # seen already
    revoked = decide(RevokeNode(name="pi-1", actor="admin", reason="stolen"), state)
    assert revoked == [e.NodeRevoked(name="pi-1", fingerprint=FP_A, actor="admin", reason="stolen")]
    state = run(state, RevokeNode(name="pi-1", actor="admin"))
    assert decide(RecordNodeConnected(fingerprint=FP_A, flower_node_id="9"), state) == []


def test_refusals() -> None:
    state = run(INITIAL, RegisterNode(name="pi-1", fingerprint=FP_A, actor="ops"))
    with pytest.raises(DomainError, match="already registered"):
        decide(RegisterNode(name="pi-1", fingerprint=FP_B, actor="ops"), state)
    with pytest.raises(DomainError, match="already registered by node pi-1"):
        decide(RegisterNode(name="pi-2", fingerprint=FP_A, actor="ops"), state)
    with pytest.raises(UnknownAggregate):
        decide(RevokeNode(name="nobody", actor="ops"), state)
    state = run(state, RevokeNode(name="pi-1", actor="ops"))
    with pytest.raises(DomainError, match="already revoked"):
        decide(RevokeNode(name="pi-1", actor="ops"), state)
    with pytest.raises(DomainError, match="new key"):  # a revoked key never comes back
        decide(RegisterNode(name="pi-1", fingerprint=FP_A, actor="ops"), state)
    again = run(state, RegisterNode(name="pi-1", fingerprint=FP_B, actor="ops"))  # same device, new key
    assert again.nodes["pi-1"].status == "registered" and again.nodes["pi-1"].fingerprint == FP_B
