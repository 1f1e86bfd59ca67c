"""The TrainingJob decider's rules, one by one."""

from __future__ import annotations

import pytest

from domain import commands as c
from domain import events as e
from domain import training_job as tj
from domain.errors import DomainError, UnknownAggregate

CONFIG = e.JobConfig(name="j", rounds=2, min_clients=2, num_clients=3, runtime="external")


def run(*commands: c.JobCommand) -> tj.JobState:
    state = tj.INITIAL
    for cmd in commands:
        state = tj.fold(tj.decide(cmd, state), state)
    return state


def started() -> tj.JobState:
    return run(c.StartJob(job_id="j1", config=CONFIG))


def result(rnd: int, *clients: str) -> c.RecordRoundResult:
    return c.RecordRoundResult(
        round=rnd, results=[c.ClientResult(client_id=x, num_examples=10) for x in clients or ("a", "b")]
    )


def test_start_creates_a_pending_job() -> None:
    state = started()
    assert state.status == "pending" and state.config == CONFIG


def test_start_twice_is_refused() -> None:
    with pytest.raises(DomainError, match="already exists"):
        tj.decide(c.StartJob(job_id="j1", config=CONFIG), started())


def test_round_results_need_an_existing_job() -> None:
    with pytest.raises(UnknownAggregate):
        tj.decide(result(1), tj.INITIAL)


def test_round_results_emit_updates_and_round_completed() -> None:
    events = tj.decide(result(1), started())
    assert [ev.type for ev in events] == [
        "ClientJoined",
        "ClientJoined",
        "ClientUpdateReceived",
        "ClientUpdateReceived",
        "RoundCompleted",
    ]
    state = tj.fold(events, started())
    assert state.round == 1 and state.clients == ("a", "b")


def test_rounds_strictly_increase() -> None:
    state = tj.fold(tj.decide(result(1), started()), started())
    with pytest.raises(DomainError, match="not after"):
        tj.decide(result(1), state)


def test_rounds_never_exceed_the_configured_number() -> None:
    with pytest.raises(DomainError, match="exceeds"):
        tj.decide(result(3), started())


def test_a_round_needs_min_clients_results() -> None:
    with pytest.raises(DomainError, match="min_clients=2"):
        tj.decide(result(1, "a"), started())


def test_failures_are_recorded_beside_results() -> None:
    cmd = c.RecordRoundResult(
        round=1,
        sampled=3,
        results=[c.ClientResult(client_id=x, num_examples=1) for x in ("a", "b")],
        failures=[c.ClientFailure(client_id="z", code="timeout", reason="no reply")],
    )
    events = tj.decide(cmd, started())
    failed = [ev for ev in events if isinstance(ev, e.ClientFailed)]
    assert len(failed) == 1 and failed[0].reason == "no reply"
    (done,) = [ev for ev in events if isinstance(ev, e.RoundCompleted)]
    assert (done.sampled, done.replied, done.failed) == (3, 2, 1)


def test_a_client_reported_twice_in_a_round_is_refused() -> None:
    cmd = c.RecordRoundResult(
        round=1,
        results=[c.ClientResult(client_id="a", num_examples=1), c.ClientResult(client_id="a", num_examples=1)],
    )
    with pytest.raises(DomainError, match="more than once"):
        tj.decide(cmd, started())


@pytest.mark.parametrize("final", [c.CompleteJob(), c.FailJob(reason="x"), c.CancelJob()])
def test_terminal_states_are_final(final: c.JobCommand) -> None:
    state = tj.fold(tj.decide(final, started()), started())
    assert state.is_terminal
    for cmd in (result(1), c.CancelJob(), c.CompleteJob(), c.JoinJob(client_id="x"), c.MarkJobStarted(run_id="1")):
        with pytest.raises(DomainError, match="terminal"):
            tj.decide(cmd, state)


def test_joining_twice_is_a_no_op() -> None:
    state = run(c.StartJob(job_id="j1", config=CONFIG), c.JoinJob(client_id="a"))
    assert tj.decide(c.JoinJob(client_id="a"), state) == []


def test_mark_started_is_idempotent_for_the_same_run() -> None:
    state = run(c.StartJob(job_id="j1", config=CONFIG), c.MarkJobStarted(run_id="7"))
    assert state.status == "running" and state.run_id == "7"
    assert tj.decide(c.MarkJobStarted(run_id="7"), state) == []
    with pytest.raises(DomainError, match="already runs"):
        tj.decide(c.MarkJobStarted(run_id="8"), state)


def test_config_rejects_min_clients_above_num_clients() -> None:
    with pytest.raises(ValueError, match="min_clients"):
        e.JobConfig(name="x", rounds=1, min_clients=4, num_clients=3)


def test_events_that_are_history_only_leave_the_state_as_it_was() -> None:
    """The stream's version lives in the handler (decider pattern): evolve changes only state."""
    state = tj.fold([e.JobCreated(job_id="j", config=CONFIG), e.ClientJoined(job_id="j", client_id="a")])
    update = e.ClientUpdateReceived(job_id="j", round=1, client_id="a", num_examples=3)
    failure = e.ClientFailed(job_id="j", round=1, client_id="a", code="x", reason="y")
    assert tj.evolve(state, update) is state and tj.evolve(state, failure) is state


def test_a_failed_round_records_its_client_failures_then_fails_the_job() -> None:
    cmd = c.FailJob(
        reason="round 1: 0 of 2 replied",
        round=1,
        failures=[c.ClientFailure(client_id="x", code="CLIENT_APP_RAISED_EXCEPTION", reason="boom")],
    )
    events = tj.decide(cmd, started())
    assert [ev.type for ev in events] == ["ClientJoined", "ClientFailed", "JobFailed"]
    failed = events[1]
    assert isinstance(failed, e.ClientFailed) and (failed.round, failed.reason) == (1, "boom")
    assert tj.fold(events, started()).status == "failed"


def test_failures_without_a_valid_round_are_refused() -> None:
    failure = c.ClientFailure(client_id="x", code="E", reason="r")
    with pytest.raises(DomainError, match="need the round"):
        tj.decide(c.FailJob(reason="x", failures=[failure]), started())
    with pytest.raises(DomainError, match="not a next round"):
        tj.decide(c.FailJob(reason="x", round=5, failures=[failure]), started())


def test_a_round_start_records_first_participation_then_round_started() -> None:
    state = run(c.StartJob(job_id="j1", config=CONFIG), c.JoinJob(client_id="a"))
    events = tj.decide(c.StartRound(round=1, client_ids=["a", "b", "c"]), state)
    assert [(ev.type, getattr(ev, "client_id", None)) for ev in events] == [
        ("ClientJoined", "b"),
        ("ClientJoined", "c"),
        ("RoundStarted", None),
    ]
    assert isinstance(events[-1], e.RoundStarted) and events[-1].sampled == ["a", "b", "c"]
    state = tj.fold(events, state)
    assert state.started_round == 1 and state.clients == ("a", "b", "c")
    assert tj.decide(c.StartRound(round=1, client_ids=["a", "b", "c"]), state) == [], "a retried report is a no-op"
    reported = tj.decide(result(1, "a", "b"), state)
    assert "ClientJoined" not in [ev.type for ev in reported], "they joined when the round began"


def test_a_round_cannot_start_out_of_order_or_past_the_last() -> None:
    with pytest.raises(DomainError, match="cannot start"):
        tj.decide(c.StartRound(round=2, client_ids=["a"]), started())
    done = run(c.StartJob(job_id="j1", config=CONFIG), result(1), result(2))
    assert tj.decide(c.StartRound(round=2, client_ids=["a"]), done) == [], "already recorded"
    with pytest.raises(DomainError, match="exceeds"):
        tj.decide(c.StartRound(round=3, client_ids=["a"]), done)
    with pytest.raises(DomainError, match="more than once"):
        tj.decide(c.StartRound(round=1, client_ids=["a", "a"]), started())
