"""The job supervisor: a process manager between flp's events and Flower runs.

Fed from the store's global feed (own checkpoint `flower_supervisor`):
- `JobCreated` (runtime "flower") -> submit a Flower run, then `MarkJobStarted(run_id)`;
- the job's last `RoundCompleted` -> `CompleteJob` (with the latest metrics and model hash);
- the run's status, polled through the Control API -> `FailJob` when it fails, is stopped
  outside flp or ends before all rounds are recorded (and `CompleteJob` as a fallback);
- `JobCancelled` -> stop the Flower run.

Restart safety: on start it replays the job streams (state only), then reconciles with Flower's
run list, matching runs to jobs by the `job-id` in their run config. Runs the engine found
unfinished when it (re)started its own SuperLink died with the previous platform process: their
jobs fail with that reason. A job with a run is never
submitted again (a crash between submit and `MarkJobStarted` is healed by adopting the run), a
running job is tracked again, a run of a cancelled job is stopped and a job whose run is gone
fails. Submissions are serialised, so two triggers for one job cannot race to two runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from commands.handlers import CommandContext, CommandHandler
from domain import commands as c
from domain import events as e
from domain.commands import JobCommand
from domain.errors import DomainError
from domain.training_job import JobState
from fl_runtime.control import FlowerControl, RunInfo
from fl_runtime.engine import FlowerEngine
from fl_runtime.run_config import UnsupportedHyperparameter, run_config_for
from persistence.ports import EventStore
from persistence.records import RecordedEvent, UndecodableEvent

log = logging.getLogger(__name__)

CHECKPOINT = "flower_supervisor"
RELEVANT = frozenset(
    cls.type for cls in (e.JobCreated, e.JobStarted, e.RoundCompleted, e.JobCompleted, e.JobFailed, e.JobCancelled)
)
ACTOR = "flower-supervisor"

HEALTH_CHECK_INTERVAL_S = 5.0  # owned Flower processes: restart what died
ORPHAN_REAP_INTERVAL_S = 5.0  # while no run is live: kill Ray agents left behind by finished runs
REAP_AFTER_RUN_END_S = 2.0  # a run's Ray agents are orphaned shortly after it ends or is stopped


class Checkpoints(Protocol):
    async def get_checkpoint(self, name: str) -> int: ...

    async def set_checkpoint(self, name: str, position: int) -> None: ...


@dataclass
class Tracked:
    job_id: str
    config: e.JobConfig
    status: str = "pending"
    run_id: str | None = None
    rounds_done: int = 0

    @property
    def all_rounds_recorded(self) -> bool:
        return self.rounds_done >= self.config.rounds

    @property
    def terminal(self) -> bool:
        return self.status in e.TERMINAL_STATUSES


async def mark_lost_runs(control: FlowerControl, engine: FlowerEngine) -> set[str]:
    """After our SuperLink (re)started on its saved state, runs it lists as unfinished have no
    processes any more: remember them as lost and stop them."""
    runs = await asyncio.to_thread(control.list_runs)
    lost = {r.run_id for r in runs.values() if not r.finished}
    engine.lost_runs |= lost
    for run_id in lost:
        try:
            await asyncio.to_thread(control.stop_run, run_id)
        except Exception as exc:
            log.info("stopping lost Flower run %s: %s", run_id, exc)
    return lost


class JobSupervisor:
    def __init__(
        self,
        store: EventStore,
        jobs: CommandHandler[JobCommand, JobState],
        checkpoints: Checkpoints,
        engine: FlowerEngine,
        control: FlowerControl,
        public_url: str,
        reply_timeout_s: float,
        token_for: Callable[[str], str | None] | None = None,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.checkpoints = checkpoints
        self.engine = engine
        self.control = control
        self.public_url = public_url.rstrip("/")
        self.reply_timeout_s = reply_timeout_s
        self.token_for = token_for
        self.poll_interval_s = poll_interval_s
        self.tracked: dict[str, Tracked] = {}
        self.position = 0
        self.ready = asyncio.Event()
        self._submit_lock = asyncio.Lock()
        self._clock = clock
        now = clock()
        self._next_health_check_at = now + HEALTH_CHECK_INTERVAL_S
        self._next_reap_at = now + ORPHAN_REAP_INTERVAL_S

    # --- the service -----------------------------------------------------------------------

    async def run(self) -> None:
        """Replay, reconcile with Flower, then follow the feed and watch runs until cancelled."""
        head = await self._replay()
        await self._reconcile()
        await self.checkpoints.set_checkpoint(CHECKPOINT, head)
        self.ready.set()
        watcher = asyncio.create_task(self._watch_runs(), name="flower-run-watcher")
        try:
            async for batch in self.store.subscribe(head):
                for recorded in batch:
                    await self._on_event(recorded, act=True)
                self.position = batch[-1].position
                await self.checkpoints.set_checkpoint(CHECKPOINT, self.position)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _replay(self) -> int:
        checkpoint = await self.checkpoints.get_checkpoint(CHECKPOINT)
        position = 0
        while batch := await self.store.read_all(position, 2000):
            for recorded in batch:
                await self._on_event(recorded, act=False)
            position = batch[-1].position
        log.info("supervisor replayed to %s (checkpoint was %s)", position, checkpoint)
        self.position = position
        return position

    # --- events ----------------------------------------------------------------------------

    async def _on_event(self, recorded: RecordedEvent, *, act: bool) -> None:
        if not recorded.stream_id.startswith("job-") or recorded.type not in RELEVANT:
            return
        try:
            event = recorded.to_event()
        except UndecodableEvent as exc:  # the job's stream is faulted: nothing can be decided on it
            log.error("supervisor: %s; job stream no longer followed", exc)
            self.tracked.pop(recorded.stream_id.removeprefix("job-"), None)
            return
        if isinstance(event, e.JobCreated):
            if event.config.runtime != "flower":
                return
            self.tracked[event.job_id] = Tracked(event.job_id, event.config)
            if act:
                await self._ensure_run(self.tracked[event.job_id], recorded.event_id)
            return
        job = self.tracked.get(getattr(event, "job_id", ""))
        if job is None:
            return
        match event:
            case e.JobStarted(run_id=run_id):
                job.status, job.run_id = "running", run_id
            case e.RoundCompleted(round=round_no):
                job.rounds_done = max(job.rounds_done, round_no)
                if act and job.all_rounds_recorded and not job.terminal:
                    # The outcome is fixed once the last round is recorded: complete now rather
                    # than after Flower's teardown (Ray shutdown takes seconds).
                    await self._complete(job)
            case e.JobCompleted():
                job.status = "completed"
            case e.JobFailed():
                job.status = "failed"
            case e.JobCancelled():
                job.status = "cancelled"
                if act and job.run_id is not None:
                    await self._stop_run(job.run_id)
        if job.terminal and (act or job.status != "cancelled"):
            self.tracked.pop(job.job_id, None)

    # --- reconciliation --------------------------------------------------------------------

    async def _reconcile(self) -> None:
        runs = await asyncio.to_thread(self.control.list_runs)
        by_job: dict[str, list[RunInfo]] = {}
        for run in runs.values():
            if run.job_id:
                by_job.setdefault(run.job_id, []).append(run)
        for job in list(self.tracked.values()):
            job_runs = by_job.get(job.job_id, [])
            lost = [r.run_id for r in job_runs if r.run_id in self.engine.lost_runs]
            if lost and job.status in ("pending", "running") and not job.all_rounds_recorded:
                reason = f"the platform restarted while Flower run {lost[0]} was running; the run was lost"
                await self._finish(job, c.FailJob(reason=reason))
            elif job.status == "cancelled":
                for run in job_runs:
                    if not run.finished:
                        await self._stop_run(run.run_id)
                self.tracked.pop(job.job_id, None)
            elif job.status == "pending":
                await self._ensure_run(job, None, runs)
            elif job.status == "running" and job.all_rounds_recorded:
                await self._complete(job)
            elif job.status == "running" and job.run_id not in runs:
                await self._execute(job, c.FailJob(reason=f"Flower run {job.run_id} is unknown to the SuperLink"))

    async def _ensure_run(self, job: Tracked, causation: str | None, runs: dict[str, RunInfo] | None = None) -> None:
        """Exactly one Flower run per job: adopt an existing one, else submit."""
        async with self._submit_lock:
            if runs is None:
                runs = await asyncio.to_thread(self.control.list_runs)
            existing = sorted((r for r in runs.values() if r.job_id == job.job_id), key=lambda r: r.finished)
            if existing:
                run_id = existing[0].run_id
                log.info("job %s: adopting Flower run %s", job.job_id, run_id)
            else:
                try:
                    token = self.token_for(job.job_id) if self.token_for else None
                    run_config = run_config_for(job.job_id, job.config, self.public_url, self.reply_timeout_s, token)
                    simulation = self.engine.simulation_config(job.config.num_clients)
                    run_id = await asyncio.to_thread(self.control.start_run, run_config, simulation)
                except UnsupportedHyperparameter as exc:
                    await self._execute(job, c.FailJob(reason=str(exc)), causation)
                    return
                except Exception as exc:  # the SuperLink refused or is unreachable
                    log.exception("job %s: submitting the Flower run failed", job.job_id)
                    await self._execute(job, c.FailJob(reason=f"submitting the Flower run failed: {exc}"), causation)
                    return
                log.info("job %s: submitted Flower run %s", job.job_id, run_id)
            job.run_id = run_id
            if not await self._execute(job, c.MarkJobStarted(run_id=run_id), causation):
                _, state = await self.jobs.load(job.job_id)
                if state.is_terminal:  # cancelled while we submitted
                    await self._stop_run(run_id)
                    self.tracked.pop(job.job_id, None)
            else:
                job.status = "running"

    # --- run status ------------------------------------------------------------------------

    async def _watch_runs(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if self._clock() >= self._next_health_check_at:
                self._next_health_check_at = self._clock() + HEALTH_CHECK_INTERVAL_S
                await self._check_engine()
            running = [j for j in self.tracked.values() if j.status == "running" and j.run_id]
            if not running:
                if self._clock() >= self._next_reap_at:
                    # Ray leaves agents behind when a simulation ends; reap them while no run is live.
                    self._next_reap_at = self._clock() + ORPHAN_REAP_INTERVAL_S
                    await asyncio.to_thread(self.engine.reap_orphans)
                continue
            try:
                runs = await asyncio.to_thread(self.control.list_runs)
            except Exception:
                log.warning("listing Flower runs failed; retrying", exc_info=True)
                continue
            for job in running:
                run = runs.get(job.run_id or "")
                if run is None:
                    await self._finish(job, c.FailJob(reason=f"Flower run {job.run_id} disappeared from the SuperLink"))
                elif run.finished:
                    await self._on_run_finished(job, run)
                    self._reap_soon()

    def _reap_soon(self) -> None:
        self._next_reap_at = self._clock() + REAP_AFTER_RUN_END_S

    async def _check_engine(self) -> None:
        try:
            superlink_restarted = await asyncio.to_thread(self.engine.ensure_running)
        except Exception:
            log.exception("restarting Flower processes failed")
            return
        if superlink_restarted:
            lost = await mark_lost_runs(self.control, self.engine)
            log.warning("the SuperLink restarted; lost runs: %s", sorted(lost))
            await self._reconcile()

    async def _on_run_finished(self, job: Tracked, run: RunInfo) -> None:
        _, state = await self.jobs.load(job.job_id)
        if state.is_terminal:
            self.tracked.pop(job.job_id, None)
            return
        if run.status == "finished:completed":
            if state.round >= job.config.rounds:
                await self._complete(job)
                return
            command: JobCommand = c.FailJob(
                reason=f"Flower run {run.run_id} ended after {state.round} of {job.config.rounds} rounds"
            )
        elif run.status == "finished:stopped":
            command = c.FailJob(reason=f"Flower run {run.run_id} was stopped outside flp")
        else:
            detail = f": {run.details}" if run.details else ""
            command = c.FailJob(reason=f"Flower run {run.run_id} {run.status}{detail}"[:2000])
        await self._finish(job, command)

    async def _complete(self, job: Tracked) -> None:
        _, state = await self.jobs.load(job.job_id)
        if state.is_terminal:
            self.tracked.pop(job.job_id, None)
            return
        await self._finish(
            job, c.CompleteJob(final_metrics=dict(state.latest_metrics), model_sha256=state.model_sha256)
        )

    async def _finish(self, job: Tracked, command: JobCommand) -> None:
        await self._execute(job, command, idempotency_key=f"job-{job.job_id}-run-{job.run_id}-end")
        self.tracked.pop(job.job_id, None)

    # --- helpers ---------------------------------------------------------------------------

    async def _stop_run(self, run_id: str) -> None:
        try:
            await asyncio.to_thread(self.control.stop_run, run_id)
            log.info("stopped Flower run %s", run_id)
            self._reap_soon()
        except Exception as exc:  # already finished, or the SuperLink is gone
            log.info("stopping Flower run %s: %s", run_id, exc)

    async def _execute(
        self, job: Tracked, command: JobCommand, causation: str | None = None, idempotency_key: str | None = None
    ) -> bool:
        ctx = CommandContext(actor=ACTOR, correlation_id=f"job-{job.job_id}", causation_id=causation)
        try:
            await self.jobs.execute(job.job_id, command, ctx, idempotency_key=idempotency_key)
        except DomainError as exc:
            log.info("job %s: %s refused: %s", job.job_id, type(command).__name__, exc.message)
            return False
        return True
