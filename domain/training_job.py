"""The TrainingJob aggregate as a decider: `decide(command, state)` and `evolve(state, event)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from domain import commands as c
from domain import events as e
from domain.errors import DomainError, UnknownAggregate


def stream_id(job_id: str) -> str:
    return f"job-{job_id}"


@dataclass(frozen=True, slots=True)
class JobState:
    job_id: str | None = None
    status: e.JobStatus | None = None
    config: e.JobConfig | None = None
    run_id: str | None = None
    clients: tuple[str, ...] = ()
    round: int = 0
    started_round: int = 0  # the newest round a RoundStarted announced
    latest_metrics: e.Metrics = field(default_factory=dict)
    final_metrics: e.Metrics = field(default_factory=dict)
    model_sha256: str | None = None
    reason: str | None = None

    @property
    def exists(self) -> bool:
        return self.status is not None

    @property
    def is_terminal(self) -> bool:
        return self.status in e.TERMINAL_STATUSES

    def to_dict(self, version: int) -> dict[str, Any]:
        """The state as JSON, as of `version` of its stream (the handler keeps the version)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "config": self.config.model_dump(mode="json") if self.config else None,
            "run_id": self.run_id,
            "clients": list(self.clients),
            "round": self.round,
            "latest_metrics": dict(self.latest_metrics),
            "final_metrics": dict(self.final_metrics),
            "model_sha256": self.model_sha256,
            "reason": self.reason,
            "version": version,
        }


INITIAL = JobState()


def _require_active(state: JobState) -> e.JobConfig:
    if not state.exists or state.config is None:
        raise UnknownAggregate("job does not exist")
    if state.is_terminal:
        raise DomainError(f"job is {state.status}; terminal states are final")
    return state.config


def decide(command: c.JobCommand, state: JobState) -> list[e.Event]:
    match command:
        case c.StartJob(job_id=job_id, config=config):
            if state.exists:
                raise DomainError(f"job {job_id} already exists")
            return [e.JobCreated(job_id=job_id, config=config)]
        case c.MarkJobStarted(run_id=run_id, provenance=provenance):
            _require_active(state)
            if state.status == "running":
                if state.run_id == run_id:
                    return []
                raise DomainError(f"job already runs as Flower run {state.run_id}")
            return [e.JobStarted(job_id=_job_id(state), run_id=run_id, provenance=provenance)]
        case c.JoinJob(client_id=client_id):
            _require_active(state)
            if client_id in state.clients:
                return []
            return [e.ClientJoined(job_id=_job_id(state), client_id=client_id)]
        case c.StartRound():
            return _start_round(command, state)
        case c.RecordRoundResult():
            return _record_round(command, state)
        case c.CompleteJob(final_metrics=final_metrics, model_sha256=sha):
            _require_active(state)
            return [e.JobCompleted(job_id=_job_id(state), final_metrics=final_metrics, model_sha256=sha)]
        case c.FailJob():
            return _fail(command, state)
        case c.CancelJob(reason=reason):
            _require_active(state)
            return [e.JobCancelled(job_id=_job_id(state), reason=reason)]
    raise TypeError(f"not a job command: {type(command).__name__}")  # pragma: no cover


def _job_id(state: JobState) -> str:
    assert state.job_id is not None
    return state.job_id


def _start_round(cmd: c.StartRound, state: JobState) -> list[e.Event]:
    """RoundStarted once per round (a repeat is a no-op), after ClientJoined for each sampled
    client taking part for the first time."""
    config = _require_active(state)
    job_id = _job_id(state)
    if cmd.round <= max(state.started_round, state.round):
        return []  # already started (a retried report) or already recorded
    if cmd.round != state.round + 1:
        raise DomainError(f"round {cmd.round} cannot start: the last recorded round is {state.round}")
    if cmd.round > config.rounds:
        raise DomainError(f"round {cmd.round} exceeds the job's {config.rounds} rounds")
    if len(set(cmd.client_ids)) != len(cmd.client_ids):
        raise DomainError("a client is sampled more than once")
    out: list[e.Event] = [
        e.ClientJoined(job_id=job_id, client_id=cid) for cid in cmd.client_ids if cid not in state.clients
    ]
    out.append(e.RoundStarted(job_id=job_id, round=cmd.round, sampled=list(cmd.client_ids)))
    return out


def _record_round(cmd: c.RecordRoundResult, state: JobState) -> list[e.Event]:
    config = _require_active(state)
    job_id = _job_id(state)
    if cmd.round <= state.round:
        raise DomainError(f"round {cmd.round} is not after the last recorded round {state.round}")
    if cmd.round > config.rounds:
        raise DomainError(f"round {cmd.round} exceeds the job's {config.rounds} rounds")
    if len(cmd.results) < config.min_clients:
        raise DomainError(
            f"round {cmd.round} has {len(cmd.results)} client results; "
            f"the job needs at least min_clients={config.min_clients}"
        )
    ids = [r.client_id for r in cmd.results] + [f.client_id for f in cmd.failures]
    if len(set(ids)) != len(ids):
        raise DomainError("a client appears more than once in the round's results and failures")
    sampled = cmd.sampled if cmd.sampled is not None else len(ids)
    if sampled < len(ids):
        raise DomainError(f"sampled={sampled} is less than the {len(ids)} clients reported")
    out: list[e.Event] = [
        e.ClientJoined(job_id=job_id, client_id=cid) for cid in dict.fromkeys(ids) if cid not in state.clients
    ]
    out += [
        e.ClientUpdateReceived(
            job_id=job_id,
            round=cmd.round,
            client_id=r.client_id,
            num_examples=r.num_examples,
            metrics=r.metrics,
            update_sha256=r.update_sha256,
            weight=r.weight,
            update_norm=r.update_norm,
            cosine_to_aggregate=r.cosine_to_aggregate,
        )
        for r in cmd.results
    ]
    out += [
        e.ClientFailed(job_id=job_id, round=cmd.round, client_id=f.client_id, code=f.code, reason=f.reason)
        for f in cmd.failures
    ]
    out.append(
        e.RoundCompleted(
            job_id=job_id,
            round=cmd.round,
            sampled=sampled,
            replied=len(cmd.results),
            failed=len(cmd.failures),
            train_metrics=cmd.train_metrics,
            evaluate_metrics=cmd.evaluate_metrics,
            central_metrics=cmd.central_metrics,
            duration_s=cmd.duration_s,
            model_sha256=cmd.model_sha256,
            strategy_state_sha256=cmd.strategy_state_sha256,
        )
    )
    return out


def _fail(cmd: c.FailJob, state: JobState) -> list[e.Event]:
    config = _require_active(state)
    job_id = _job_id(state)
    if cmd.failures and cmd.round is None:
        raise DomainError("client failures need the round they happened in")
    if cmd.round is not None and not state.round < cmd.round <= config.rounds:
        raise DomainError(f"round {cmd.round} is not a next round of this job (last {state.round}, of {config.rounds})")
    ids = [f.client_id for f in cmd.failures]
    if len(set(ids)) != len(ids):
        raise DomainError("a client appears more than once in the round's failures")
    out: list[e.Event] = [e.ClientJoined(job_id=job_id, client_id=cid) for cid in ids if cid not in state.clients]
    out += [
        e.ClientFailed(job_id=job_id, round=cmd.round or 0, client_id=f.client_id, code=f.code, reason=f.reason)
        for f in cmd.failures
    ]
    out.append(e.JobFailed(job_id=job_id, reason=cmd.reason))
    return out


def _created(state: JobState, ev: e.JobCreated) -> JobState:
    return replace(state, job_id=ev.job_id, status="pending", config=ev.config)


def _started(state: JobState, ev: e.JobStarted) -> JobState:
    return replace(state, status="running", run_id=ev.run_id)


def _joined(state: JobState, ev: e.ClientJoined) -> JobState:
    return replace(state, clients=(*state.clients, ev.client_id))


def _round_started(state: JobState, ev: e.RoundStarted) -> JobState:
    return replace(state, started_round=ev.round)


def _round_completed(state: JobState, ev: e.RoundCompleted) -> JobState:
    metrics = {**ev.train_metrics, **ev.evaluate_metrics, **ev.central_metrics}
    return replace(state, round=ev.round, latest_metrics=metrics, model_sha256=ev.model_sha256)


def _completed(state: JobState, ev: e.JobCompleted) -> JobState:
    return replace(
        state,
        status="completed",
        final_metrics=ev.final_metrics,
        model_sha256=ev.model_sha256 or state.model_sha256,
    )


def _failed(state: JobState, ev: e.JobFailed) -> JobState:
    return replace(state, status="failed", reason=ev.reason)


def _cancelled(state: JobState, ev: e.JobCancelled) -> JobState:
    return replace(state, status="cancelled", reason=ev.reason)


_EVOLVE: dict[type[e.Event], Callable[[JobState, Any], JobState]] = {
    e.JobCreated: _created,
    e.JobStarted: _started,
    e.ClientJoined: _joined,
    e.RoundStarted: _round_started,
    e.RoundCompleted: _round_completed,
    e.JobCompleted: _completed,
    e.JobFailed: _failed,
    e.JobCancelled: _cancelled,
}


def evolve(state: JobState, event: e.Event) -> JobState:
    """The state after one event."""
    step = _EVOLVE.get(type(event))
    return step(state, event) if step is not None else state  # history only (updates, failures)


def fold(events: list[e.Event], state: JobState = INITIAL) -> JobState:
    for event in events:
        state = evolve(state, event)
    return state
