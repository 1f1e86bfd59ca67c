from __future__ import annotations

import pytest

from domain import client as cl
from domain import commands as c
from domain.errors import DomainError, UnknownAggregate


def test_register_leave_and_register_again() -> None:
    reg = c.RegisterClient(client_id="d1", name="pi", properties={"zone": "a"})
    state = cl.INITIAL
    for ev in cl.decide(reg, state):
        state = cl.evolve(state, ev)
    assert state.active and state.name == "pi"
    assert cl.decide(reg, state) == []  # same registration again: no-op
    with pytest.raises(DomainError):
        cl.decide(c.RegisterClient(client_id="d1", name="other"), state)
    for ev in cl.decide(c.LeaveFleet(reason="retired"), state):
        state = cl.evolve(state, ev)
    assert not state.active
    with pytest.raises(DomainError, match="already left"):
        cl.decide(c.LeaveFleet(), state)
    assert [ev.type for ev in cl.decide(reg, state)] == ["ClientRegistered"]


def test_leaving_unknown_client_is_refused() -> None:
    with pytest.raises(UnknownAggregate):
        cl.decide(c.LeaveFleet(), cl.INITIAL)
