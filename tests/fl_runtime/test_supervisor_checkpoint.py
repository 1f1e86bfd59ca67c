"""The supervisor's checkpoint: after a restart it reads only the events after it, and still
reconciles every open job with the SuperLink's runs. No Flower here: a scripted SuperLink in front
of the real event store, read-model store and command handler (the real-SuperLink tests cover
Flower itself)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from adapters.sqlite_event_store import SqliteEventStore
from adapters.sqlite_read_models import SqliteReadModelStore
from commands.handlers import TRAINING_JOB, CommandHandler
from domain import commands as c
from domain.commands import JobCommand
from domain.events import JobConfig
from domain.training_job import JobState
from fl_runtime.control import RunInfo, Scalar, Simulation
from fl_runtime.engine import EngineConfig, FlowerEngine
from fl_runtime.supervisor import CHECKPOINT, OPEN_JOBS, JobSupervisor
from persistence.records import NewEvent, RecordedEvent


class ScriptedSuperLink:
    """The Control API of a SuperLink, in memory: runs are what the test says they are."""

    def __init__(self) -> None:
        self.runs: dict[str, RunInfo] = {}
        self.submitted: list[str] = []  # job ids, one per start_run
        self._ids = itertools.count(100)
        self.refuse: str | None = None  # start_run raises this

    def start_run(self, run_config: dict[str, Scalar], simulation: Simulation | None = None) -> str:
        if self.refuse is not None:
            raise RuntimeError(self.refuse)
        run_id = str(next(self._ids))
        self.runs[run_id] = RunInfo(run_id, "running", "", dict(run_config))
        self.submitted.append(str(run_config["job-id"]))
        return run_id

    def list_runs(self) -> dict[str, RunInfo]:
        return dict(self.runs)

    def stop_run(self, run_id: str) -> None:
        if self.runs[run_id].finished:
            raise RuntimeError(f"run {run_id} is already finished")
        self.runs[run_id] = replace(self.runs[run_id], status="finished:stopped")

    def runs_of(self, job_id: str) -> list[RunInfo]:
        return [r for r in self.runs.values() if r.job_id == job_id]


class CountingStore(SqliteEventStore):
    """Remembers where each `read_all` started and how many events it returned."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="NORMAL")
        self.reads: list[tuple[int, int]] = []

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        batch = await super().read_all(after_position, limit)
        self.reads.append((after_position, len(batch)))
        return batch


class Rig:
    def __init__(self, tmp_path: Path, store: CountingStore, read_models: SqliteReadModelStore) -> None:
        self.store = store
        self.read_models = read_models
        self.jobs: CommandHandler[JobCommand, JobState] = CommandHandler(store, TRAINING_JOB)
        self.link = ScriptedSuperLink()
        self.engine = FlowerEngine(EngineConfig(mode="remote", data_dir=tmp_path, remote_superlink="127.0.0.1:9"))

    @contextlib.asynccontextmanager
    async def supervisor(self) -> AsyncIterator[JobSupervisor]:
        sup = JobSupervisor(
            self.store, self.jobs, self.read_models, self.engine, self.link, "http://flp.test", 30.0, None, 0.02
        )
        task = asyncio.create_task(sup.run())
        ready = asyncio.create_task(sup.ready.wait())
        await asyncio.wait({task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped it
        assert sup.ready.is_set()
        try:
            yield sup
        finally:
            ready.cancel()
            task.cancel()  # as a crash would
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def create(
        self,
        job_id: str,
        runtime: Literal["flower", "external"] = "flower",
        rounds: int = 2,
        hyperparameters: dict[str, float | int | str | bool] | None = None,
    ) -> None:
        config = JobConfig(
            name=job_id,
            rounds=rounds,
            min_clients=1,
            num_clients=1,
            runtime=runtime,
            hyperparameters=hyperparameters or {},
        )
        await self.jobs.execute(job_id, c.StartJob(job_id=job_id, config=config))

    async def record_round(self, job_id: str, n: int) -> None:
        result = c.ClientResult(client_id="node-1", num_examples=10)
        await self.jobs.execute(
            job_id, c.RecordRoundResult(round=n, results=[result], central_metrics={"central_acc": n / 10})
        )

    async def state(self, job_id: str) -> JobState:
        return (await self.jobs.load(job_id))[1]

    async def saved(self) -> tuple[int, dict[str, object] | None]:
        return await self.read_models.get_checkpoint(CHECKPOINT), await self.read_models.get(CHECKPOINT, OPEN_JOBS)

    async def settled(self) -> int:
        """Wait until the supervisor has folded and checkpointed the whole store; the head."""
        head = 0

        async def caught_up() -> bool:
            nonlocal head
            head = await self.store.head_position()
            return await self.read_models.get_checkpoint(CHECKPOINT) == head

        await until(caught_up)
        return head


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, step_s: float = 0.02) -> None:
    for _ in range(int(timeout_s / step_s)):
        if await check():
            return
        await asyncio.sleep(step_s)
    raise TimeoutError(f"not within {timeout_s:g}s")


async def truthy(value: bool) -> bool:
    return value


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = CountingStore(tmp_path / "events.db")
    await store.open()
    read_models = await SqliteReadModelStore(tmp_path / "read-models.db").open()
    try:
        yield Rig(tmp_path, store, read_models)
    finally:
        await read_models.close()
        await store.close()


def noise(n: int) -> list[NewEvent]:
    return [NewEvent(str(uuid.uuid4()), "Noise", 1, {"n": i}, {}) for i in range(n)]


async def test_a_restart_reads_only_what_follows_the_checkpoint_and_reconciles_every_open_job(rig: Rig) -> None:
    link = rig.link
    # --- first life: jobs start, one completes, and a long history piles up -------------------
    async with rig.supervisor() as first:
        for job_id in ("a", "c", "e", "l"):
            await rig.create(job_id)
        await rig.create("x", runtime="external")
        await rig.create("f", rounds=1)
        await until(lambda: truthy(len(link.submitted) == 5))
        await rig.record_round("f", 1)  # its last round: the supervisor completes it
        for i in range(6):  # a history that has nothing to do with Flower ...
            await rig.store.append(f"noise-{i}", noise(500), None)
        # ... and a job stream that no longer decodes
        await rig.store.append("job-bad", [NewEvent(str(uuid.uuid4()), "JobCreated", 1, {"job_id": "bad"}, {})], 0)
        checkpoint = await rig.settled()
        assert (await rig.state("f")).status == "completed"
        assert set(first.tracked) == {"a", "c", "e", "l"}
    assert await rig.saved() == (checkpoint, {"job_ids": ["a", "c", "e", "l"], "position": checkpoint})
    assert checkpoint > 3000
    runs = {job_id: link.runs_of(job_id)[0].run_id for job_id in ("a", "c", "e", "l")}

    # --- while it is down -----------------------------------------------------------------------
    await rig.record_round("a", 1)
    await rig.record_round("a", 2)  # a: all rounds recorded, nobody completed it
    await rig.jobs.execute("c", c.CancelJob(reason="not needed"))  # c: cancelled, its run still runs
    del link.runs[runs["e"]]  # e: the SuperLink no longer knows its run
    rig.engine.lost_runs.add(runs["l"])  # l: its run died with the previous SuperLink
    link.runs[runs["l"]] = replace(link.runs[runs["l"]], status="finished:stopped")
    await rig.create("d")  # d: created, never submitted
    await rig.create("g")  # g: submitted just before the crash, MarkJobStarted never recorded
    adopted = link.start_run({"job-id": "g"})
    await rig.create("y", runtime="external")
    head = await rig.store.head_position()
    rig.store.reads.clear()

    # --- second life ----------------------------------------------------------------------------
    async with rig.supervisor() as second:
        assert (second.restored_from, second.scanned) == (checkpoint, head - checkpoint)
        scan = list(rig.store.reads)  # the start-up scan, then the feed from the head
        assert min(after for after, _ in scan) == checkpoint, "read nothing before the checkpoint"
        assert sum(n for _, n in scan) < 50

        a = await rig.state("a")
        assert a.status == "completed" and a.final_metrics == {"central_acc": 0.2}
        assert (await rig.state("c")).status == "cancelled"
        assert link.runs[runs["c"]].status == "finished:stopped"
        e = await rig.state("e")
        assert e.status == "failed" and e.reason == f"Flower run {runs['e']} is unknown to the SuperLink"
        lost = await rig.state("l")
        assert lost.status == "failed" and lost.reason is not None and "was lost" in lost.reason
        assert ((await rig.state("d")).status, len(link.runs_of("d"))) == ("running", 1)
        g = await rig.state("g")
        assert (g.status, g.run_id, [r.run_id for r in link.runs_of("g")]) == ("running", adopted, [adopted])
        assert not link.runs_of("x") and not link.runs_of("y")
        assert link.submitted.count("d") == link.submitted.count("g") == 1  # g: only the run before the crash
        assert all(len(link.runs_of(job_id)) == 1 for job_id in "acdfgl")

        await until(lambda: truthy(set(second.tracked) == {"d", "g"}))  # c: once its run shows stopped
        await rig.create("z", runtime="external")  # any event moves the checkpoint
        settled = await rig.settled()
        assert (await rig.saved())[1] == {"job_ids": ["d", "g"], "position": settled}

    # --- third life: nothing left to do, nothing done twice -------------------------------------
    submitted = list(link.submitted)
    async with rig.supervisor() as third:
        assert (third.restored_from, third.scanned) == (settled, 0)
        assert set(third.tracked) == {"d", "g"}
        assert third.tracked["d"].status == "running"
        await rig.record_round("d", 1)
        await rig.record_round("d", 2)
        await until(lambda: truthy("d" not in third.tracked))
    assert (await rig.state("d")).status == "completed"
    assert link.submitted == submitted


async def test_a_run_lost_before_its_job_started_is_replaced_once_and_the_job_runs(rig: Rig) -> None:
    """A replica submitted the run, then died (its SuperLink with it) before MarkJobStarted was
    recorded: nothing of that run reached the log, so the next owner runs the job afresh instead
    of failing a job that never started, and adopts nothing of the lost run."""
    await rig.create("h")
    lost_run = rig.link.start_run({"job-id": "h"})
    rig.engine.lost_runs.add(lost_run)
    rig.link.runs[lost_run] = replace(rig.link.runs[lost_run], status="finished:stopped")
    async with rig.supervisor():
        await until(lambda: truthy(len(rig.link.runs_of("h")) == 2))

        async def started() -> bool:
            return (await rig.state("h")).status == "running"

        await until(started)
        h = await rig.state("h")
        assert h.status == "running" and h.run_id not in (None, lost_run)
    assert rig.link.submitted.count("h") == 2  # the lost one and its one replacement


async def test_a_checkpoint_without_its_document_is_not_trusted(rig: Rig) -> None:
    """A checkpoint from before the open-jobs document (or one moved by someone else) cannot say
    which jobs are open: the supervisor scans from 0, then writes both together."""
    await rig.create("old")
    await rig.store.append("noise-0", noise(10), None)
    head = await rig.store.head_position()
    await rig.read_models.set_checkpoint(CHECKPOINT, head)
    async with rig.supervisor() as sup:
        assert (sup.restored_from, sup.scanned) == (0, head)
        await until(lambda: truthy(sup.tracked.get("old", JobState()).status == "running"))
        assert len(rig.link.runs_of("old")) == 1
        settled = await rig.settled()
    assert await rig.saved() == (settled, {"job_ids": ["old"], "position": settled})


async def test_a_job_that_cannot_be_submitted_fails_without_a_run(rig: Rig) -> None:
    async with rig.supervisor() as sup:
        await rig.create("odd", hyperparameters={"momentum": 0.9})
        rig.link.refuse = "SuperLink says no"
        await rig.create("refused")

        async def both_ended() -> bool:
            return all([(await rig.state(job_id)).is_terminal for job_id in ("odd", "refused")])

        await until(both_ended)
        assert not sup.tracked
    odd, refused = await rig.state("odd"), await rig.state("refused")
    assert odd.status == "failed" and odd.reason is not None and "unknown hyperparameter 'momentum'" in odd.reason
    assert (refused.status, refused.reason) == ("failed", "submitting the Flower run failed: SuperLink says no")
    assert rig.link.runs == {}
