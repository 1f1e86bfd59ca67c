"""Hypothesis drives random command sequences through the real handler and SQLite store.

Invariants: no rule is ever broken by what gets stored, refused commands store nothing, and
folding the stored events gives the same state as the live path."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from adapters.sqlite_event_store import SqliteEventStore
from commands.handlers import TRAINING_JOB, CommandHandler, fold
from domain import commands as c
from domain import events as e
from domain import training_job as tj
from domain.errors import DomainError

CLIENTS = ["a", "b", "c", "d"]
CONFIG = e.JobConfig(name="prop", rounds=4, min_clients=2, num_clients=4, runtime="external")


class JobMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory()
        self.store = self.loop.run_until_complete(SqliteEventStore(Path(self.dir.name) / "e.db").open())
        self.handler = CommandHandler(self.store, TRAINING_JOB)
        self.live = tj.INITIAL
        self.max_round_seen = 0

    def execute(self, cmd: c.JobCommand) -> None:
        before = self.loop.run_until_complete(self.store.stream_version("job-j"))
        try:
            result = self.loop.run_until_complete(self.handler.execute("j", cmd))
        except DomainError:
            after = self.loop.run_until_complete(self.store.stream_version("job-j"))
            assert after == before, "a refused command must store nothing"
            return
        for recorded in result.events:
            self.live = tj.evolve(self.live, recorded.to_event())

    @rule()
    def start(self) -> None:
        self.execute(c.StartJob(job_id="j", config=CONFIG))

    @rule(client=st.sampled_from(CLIENTS))
    def join(self, client: str) -> None:
        self.execute(c.JoinJob(client_id=client))

    @rule(
        rnd=st.integers(min_value=0, max_value=6),
        ok=st.lists(st.sampled_from(CLIENTS), unique=True, max_size=4),
        failed=st.lists(st.sampled_from(CLIENTS), unique=True, max_size=2),
    )
    def record_round(self, rnd: int, ok: list[str], failed: list[str]) -> None:
        results = [c.ClientResult(client_id=x, num_examples=5) for x in ok]
        failures = [c.ClientFailure(client_id=x, code="err", reason="boom") for x in failed if x not in ok]
        if rnd < 1:
            return
        self.execute(c.RecordRoundResult(round=rnd, results=results, failures=failures))

    @rule(kind=st.sampled_from(["complete", "fail", "cancel", "started"]))
    def lifecycle(self, kind: str) -> None:
        commands: dict[str, c.JobCommand] = {
            "complete": c.CompleteJob(),
            "fail": c.FailJob(reason="x"),
            "cancel": c.CancelJob(),
            "started": c.MarkJobStarted(run_id="r1"),
        }
        cmd = commands[kind]
        self.execute(cmd)

    @invariant()
    def stored_history_obeys_the_rules(self) -> None:
        events = self.loop.run_until_complete(self.store.read_stream("job-j"))
        terminal_seen = False
        last_round = 0
        for recorded in events:
            ev = recorded.to_event()
            assert not terminal_seen, "nothing may follow a terminal event"
            if isinstance(ev, e.RoundCompleted):
                assert last_round < ev.round <= CONFIG.rounds
                assert ev.replied >= CONFIG.min_clients
                last_round = ev.round
            if isinstance(ev, e.JobCompleted | e.JobFailed | e.JobCancelled):
                terminal_seen = True
        joined = [r.data["client_id"] for r in events if r.type == "ClientJoined"]
        assert len(joined) == len(set(joined)), "a client joins a job once"

    @invariant()
    def replay_equals_live_state(self) -> None:
        events = self.loop.run_until_complete(self.store.read_stream("job-j"))
        assert fold(TRAINING_JOB, events) == self.live
        _, cached = self.loop.run_until_complete(self.handler.load("j"))
        assert cached == self.live

    def teardown(self) -> None:
        self.loop.run_until_complete(self.store.close())
        self.loop.close()
        self.dir.cleanup()


JobMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestJobMachine = JobMachine.TestCase
