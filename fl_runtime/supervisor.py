"""The job supervisor: a process manager between flp's events and Flower runs.

Every open job of runtime "flower" is tracked as the decider's own `JobState`, folded with
`domain.training_job.evolve` from the store's global feed, and what to do is decided from it:
- pending -> submit a Flower run (or adopt the job's run, see below), then `MarkJobStarted(run_id)`;
- running with its last round recorded -> `CompleteJob` (with the latest metrics and model hash);
- running, the run's status polled through the Control API -> `FailJob` when the run fails, is
  stopped outside flp, disappears or ends before all rounds are recorded (`CompleteJob` as a
  fallback when it ends after the last round);
- cancelled -> stop the job's runs; the job stays tracked until none of them is unfinished;
- completed / failed -> no longer tracked.

Checkpoint: the read-model store holds one document (projection and checkpoint
`flower_supervisor`) with the ids of the tracked jobs and the feed position they are true at,
written together with the checkpoint in one conditional commit. On start it reads them, scans
only the events after that position for newly created flower jobs, loads each job's current
state at its stream head through the command handler, reconciles with Flower's run list, and
follows the feed from where the scan ended. Without the document (a first start, or a
checkpoint written before the document existed) it scans from 0.

Restart safety: reconciliation matches runs to jobs by the `job-id` in their run config. Runs
the engine found unfinished when it (re)started its own SuperLink died with the previous platform
process: their jobs fail with that reason. A job with a run is never submitted again (a crash
between submit and `MarkJobStarted` is healed by adopting the run), a running job is tracked
again and completes if its last round is recorded, a run of a cancelled job is stopped and a job
whose run is gone fails. Submissions are serialised, so two triggers for one job cannot race to
two runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from commands.handlers import CommandContext, CommandHandler
from domain import commands as c
from domain import events as e
from domain.commands import JobCommand
from domain.errors import DomainError
from domain.provenance import JobProvenance
from domain.training_job import INITIAL, JobState, evolve
from fl_runtime.control import RunControl, RunInfo
from fl_runtime.engine import FlowerEngine
from fl_runtime.provenance import job_provenance
from fl_runtime.run_config import UnsupportedHyperparameter, run_config_for
from persistence.ports import EventStore, FencedOut, Ownership
from persistence.records import RecordedEvent, UndecodableEvent
from projections.ports import ReadModelStore
from telemetry import tracing

log = logging.getLogger(__name__)

CHECKPOINT = "flower_supervisor"  # the read-model projection (one document) and its checkpoint
OPEN_JOBS = "open_jobs"  # the document: {"job_ids": [...], "position": n}
SCAN_BATCH = 2000
COMMIT_ATTEMPTS = 3
ACTOR = "flower-supervisor"

HEALTH_CHECK_INTERVAL_S = 5.0  # owned Flower processes: restart what died
ORPHAN_REAP_INTERVAL_S = 5.0  # while no run is live: kill Ray agents left behind by finished runs
REAP_AFTER_RUN_END_S = 2.0  # a run's Ray agents are orphaned shortly after it ends or is stopped
SUBMIT_MARGIN_S = 1.0  # submit a run only with at least this long left on the runtime lease
STOP_RETRY_INTERVAL_S = 5.0  # a cancelled job's run that is still unfinished: ask again


def all_rounds_recorded(state: JobState) -> bool:
    return state.config is not None and state.round >= state.config.rounds


async def mark_lost_runs(control: RunControl, engine: FlowerEngine) -> set[str]:
    """After our SuperLink (re)started on its saved state, runs it lists as unfinished have no
    processes any more: remember them as lost and stop them. Runs already stopped then were
    stopped with the processes of a replica that died (its SuperLink stops what it ran when it is
    terminated), so they are lost too, not "stopped outside flp"."""
    runs = await asyncio.to_thread(control.list_runs)
    lost = {r.run_id for r in runs.values() if not r.finished}
    engine.lost_runs |= lost | {r.run_id for r in runs.values() if r.status == "finished:stopped"}
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
        read_models: ReadModelStore,
        engine: FlowerEngine,
        control: RunControl,
        public_url: str,
        reply_timeout_s: float,
        token_for: Callable[[str], str | None] | None = None,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        ownership: Ownership | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.read_models = read_models
        self.engine = engine
        self.control = control
        self.public_url = public_url.rstrip("/")
        self.reply_timeout_s = reply_timeout_s
        self.token_for = token_for
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self.ownership = ownership or Ownership()
        self.tracked: dict[str, JobState] = {}
        self._versions: dict[str, int] = {}  # stream version each tracked state is folded to
        self.position = 0  # the feed is folded into `tracked` up to here
        self.restored_from = 0  # where the start-up scan began (the stored document's position)
        self.scanned = 0  # events the start-up scan read
        self.ready = asyncio.Event()
        self._checkpoint = 0  # the stored checkpoint, as last read or written
        self._saved: tuple[int, list[str]] | None = None
        self._submit_lock = asyncio.Lock()
        now = clock()
        self._next_health_check_at = now + HEALTH_CHECK_INTERVAL_S
        self._next_reap_at = now + ORPHAN_REAP_INTERVAL_S
        self._next_stop_at: dict[str, float] = {}
        self._origins: dict[str, str | None] = {}  # job -> traceparent of the command that created it

    # --- the service -----------------------------------------------------------------------

    async def run(self) -> None:
        """Restore from the checkpoint, reconcile with Flower, then follow the feed and watch runs."""
        head = await self._restore()
        await self._reconcile()
        await self._save()
        self.ready.set()
        watcher = asyncio.create_task(self._watch_runs(), name="flower-run-watcher")
        try:
            async for batch in self.store.subscribe(head):
                for recorded in batch:
                    await self._on_event(recorded)
                self.position = batch[-1].position
                await self._save()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _restore(self) -> int:
        """The tracked jobs as of the head: the stored open jobs, plus flower jobs created after
        the stored position, each loaded at its stream head."""
        self._checkpoint = await self.read_models.get_checkpoint(CHECKPOINT)
        job_ids, position = _open_jobs(await self.read_models.get(CHECKPOINT, OPEN_JOBS))
        if job_ids is None:
            log.info("supervisor: no open-jobs document (checkpoint %s); scanning from 0", self._checkpoint)
            job_ids, position = set(), 0
        self.restored_from = position
        while batch := await self.store.read_all(position, SCAN_BATCH):
            self.scanned += len(batch)
            for recorded in batch:
                if (event := _created_flower_job(recorded)) is not None:
                    job_ids.add(event.job_id)
            position = batch[-1].position
        for job_id in sorted(job_ids):
            await self._refresh(job_id, track=True)
        self.position = position
        log.info(
            "supervisor restored %s open jobs: scanned %s events after position %s, head %s",
            len(self.tracked),
            self.scanned,
            self.restored_from,
            position,
        )
        return position

    async def _save(self) -> None:
        """Commit the tracked job ids with the position they are true at (a superset is safe:
        a job that ended meanwhile is dropped when loaded)."""
        job_ids = sorted(self.tracked)
        if self._saved == (self.position, job_ids):
            return
        doc: dict[str, Any] = {"job_ids": job_ids, "position": self.position}
        for _ in range(COMMIT_ATTEMPTS):
            changes = {OPEN_JOBS: (self.position, doc)}
            if await self.read_models.commit(
                CHECKPOINT, changes, self._checkpoint, self.position, self.ownership.token
            ):
                self._checkpoint, self._saved = self.position, (self.position, job_ids)
                return
            # Another writer moved the checkpoint (the previous supervisor's last commit landing
            # late): our document is complete as of our position, so write it over theirs.
            self._checkpoint = await self.read_models.get_checkpoint(CHECKPOINT)
        log.warning("supervisor: checkpoint %s keeps moving under us; saving later", CHECKPOINT)

    # --- events ----------------------------------------------------------------------------

    async def _on_event(self, recorded: RecordedEvent) -> None:
        if not recorded.stream_id.startswith("job-"):
            return
        job_id = recorded.stream_id.removeprefix("job-")
        state = self.tracked.get(job_id)
        if state is None:
            if (created := _created_flower_job(recorded)) is not None:
                self._track(job_id, recorded.version, evolve(INITIAL, created))
                with tracing.continued(_traceparent(recorded)):
                    await self._act(job_id, recorded.event_id)
            return
        version = self._versions[job_id]
        if recorded.version <= version:  # folded already (loaded at the stream head, or our own command)
            return
        if recorded.version == version + 1:
            try:
                event = recorded.to_event()
            except UndecodableEvent as exc:  # the job's stream is faulted: nothing can be decided on it
                log.error("supervisor: %s; job stream no longer followed", exc)
                self._forget(job_id)
                return
            self._track(job_id, recorded.version, evolve(state, event))
        else:  # a gap in what we folded: take the stream head
            await self._refresh(job_id)
        with tracing.continued(_traceparent(recorded)):  # the commands it leads to join its trace
            await self._act(job_id, recorded.event_id)

    async def _act(self, job_id: str, causation: str | None = None) -> None:
        """What the job's current state asks of the supervisor."""
        state = self.tracked.get(job_id)
        if state is None:
            return
        if state.status == "pending":
            await self._ensure_run(job_id, causation)
        elif state.status == "running" and all_rounds_recorded(state):
            # The outcome is fixed once the last round is recorded: complete now rather than
            # after Flower's teardown (Ray shutdown takes seconds).
            await self._complete(job_id)
        elif state.status == "cancelled":
            await self._stop_runs_of(job_id)
        else:
            self._settle(job_id)

    # --- tracked state ---------------------------------------------------------------------

    def _track(self, job_id: str, version: int, state: JobState) -> None:
        self.tracked[job_id] = state
        self._versions[job_id] = version

    def _forget(self, job_id: str) -> None:
        self.tracked.pop(job_id, None)
        self._versions.pop(job_id, None)
        self._next_stop_at.pop(job_id, None)

    def _settle(self, job_id: str) -> None:
        """Stop tracking a job that needs nothing more (cancelled ones wait for their runs to end)."""
        state = self.tracked.get(job_id)
        if state is not None and state.is_terminal and state.status != "cancelled":
            self._forget(job_id)

    async def _refresh(self, job_id: str, *, track: bool = False) -> None:
        """Take the job's state at its stream head (through the command handler). `track`: start
        tracking it if it is a flower job that is open (or cancelled: its runs may need a stop)."""
        if not track and job_id not in self.tracked:
            return
        try:
            version, state = await self.jobs.load(job_id)
        except UndecodableEvent as exc:
            log.error("supervisor: %s; job stream no longer followed", exc)
            self._forget(job_id)
            return
        if track:
            flower = state.config is not None and state.config.runtime == "flower"
            if not flower or state.status in ("completed", "failed"):
                return
        elif job_id not in self.tracked or version < self._versions[job_id]:
            return  # forgotten meanwhile, or the feed got further while we read
        self._track(job_id, version, state)

    # --- reconciliation --------------------------------------------------------------------

    async def _reconcile(self) -> None:
        runs = await asyncio.to_thread(self.control.list_runs)
        by_job: dict[str, list[RunInfo]] = {}
        for run in runs.values():
            if run.job_id:
                by_job.setdefault(run.job_id, []).append(run)
        for job_id in list(self.tracked):
            await self._refresh(job_id)
            state = self.tracked.get(job_id)
            if state is None:
                continue
            job_runs = by_job.get(job_id, [])
            lost = [r.run_id for r in job_runs if r.run_id in self.engine.lost_runs]
            # pending: its run was lost before JobStarted was recorded, so nothing of it reached
            # the log; `_ensure_run` (below) runs the job afresh and adopts no lost run
            if lost and state.status == "running" and not all_rounds_recorded(state):
                reason = f"the flp process running Flower run {lost[0]} stopped (restart or failover); the run was lost"
                await self._finish(job_id, c.FailJob(reason=reason))
            elif state.status == "cancelled":
                await self._stop_runs_of(job_id, runs)
            elif state.status == "pending":
                await self._ensure_run(job_id, None, runs)
            elif state.status == "running" and all_rounds_recorded(state):
                await self._complete(job_id)
            elif state.status == "running" and state.run_id not in runs:
                reason = f"Flower run {state.run_id} is unknown to the SuperLink"
                await self._finish(job_id, c.FailJob(reason=reason))
            else:
                self._settle(job_id)

    async def _ensure_run(self, job_id: str, causation: str | None, runs: dict[str, RunInfo] | None = None) -> None:
        """Exactly one Flower run per job: adopt an existing one, else submit."""
        async with self._submit_lock:
            state = self.tracked.get(job_id)
            if state is None or state.status != "pending" or state.config is None:
                return  # decided while we waited for the lock
            config = state.config
            if runs is None:
                runs = await asyncio.to_thread(self.control.list_runs)
            existing = sorted(
                (r for r in runs.values() if r.job_id == job_id and r.run_id not in self.engine.lost_runs),
                key=lambda r: r.finished,
            )
            failure: str | None = None
            provenance: JobProvenance | None = None
            if existing:
                run_id = existing[0].run_id
                log.info("job %s: adopting Flower run %s", job_id, run_id)
                provenance = await self._provenance(job_id, config)
            elif not self.ownership.held(SUBMIT_MARGIN_S):
                # A run cannot be fenced once submitted: submit only with time left on the lease.
                raise FencedOut(f"the runtime lease is lapsing; job {job_id} is left to the next owner")
            else:
                try:
                    provenance = await self._provenance(job_id, config)
                    run_id = await self._start_run(job_id, config)
                    log.info("job %s: submitted Flower run %s", job_id, run_id)
                except UnsupportedHyperparameter as exc:
                    failure = str(exc)
                except Exception as exc:  # the SuperLink refused or is unreachable
                    log.exception("job %s: submitting the Flower run failed", job_id)
                    failure = f"submitting the Flower run failed: {exc}"
            if failure is not None:
                await self._execute(job_id, c.FailJob(reason=failure), causation)
            elif not await self._execute(job_id, c.MarkJobStarted(run_id=run_id, provenance=provenance), causation):
                _, current = await self.jobs.load(job_id)  # tracked or not: the feed may have forgotten it
                if current.is_terminal:  # cancelled (or ended) while we submitted
                    await self._stop_run(run_id)
            await self._refresh(job_id)
            self._settle(job_id)

    async def _provenance(self, job_id: str, config: e.JobConfig) -> JobProvenance | None:
        """What JobStarted records for replay; None (and a log line) when it cannot be computed."""
        try:
            run_config = run_config_for(job_id, config, self.public_url, self.reply_timeout_s)
            return await asyncio.to_thread(job_provenance, run_config)
        except UnsupportedHyperparameter:
            raise
        except Exception:
            log.exception("job %s: could not compute its provenance; replay will not be possible", job_id)
            return None

    async def _start_run(self, job_id: str, config: e.JobConfig) -> str:
        """Submit the job's Flower run in a `flower.run.start` span (in the job's trace); the
        run's ServerApp sends that span's traceparent with each round it reports."""
        origin = await self._origin(job_id)
        with tracing.tracer().start_as_current_span(
            "flower.run.start", context=tracing.parent(origin), attributes={"flp.job_id": job_id}
        ) as span:
            token = self.token_for(job_id) if self.token_for else None
            traceparent = tracing.current_traceparent()
            # The ServerApp builds the same initial model and uploads it: replay fails if the
            # recorded initial model's artifact is missing or the first round does not match.
            run_config = run_config_for(job_id, config, self.public_url, self.reply_timeout_s, token, traceparent)
            simulation = self.engine.simulation_config(config.num_clients)
            run_id = await asyncio.to_thread(self.control.start_run, run_config, simulation)
            span.set_attribute("flower.run_id", run_id)
            return run_id

    async def _origin(self, job_id: str) -> str | None:
        """The traceparent of the command that created the job (its first event): a run
        submitted after a restart or from the reconciliation still joins the job's trace."""
        if job_id not in self._origins:
            first = await self.store.read_stream(f"job-{job_id}", 1, 1)
            self._origins[job_id] = _traceparent(first[0]) if first else None
            if len(self._origins) > 10_000:
                self._origins.pop(next(iter(self._origins)))
        return self._origins[job_id]

    # --- run status ------------------------------------------------------------------------

    async def _watch_runs(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            if self._clock() >= self._next_health_check_at:
                self._next_health_check_at = self._clock() + HEALTH_CHECK_INTERVAL_S
                await self._check_engine()
            watched = {
                job_id: state
                for job_id, state in self.tracked.items()
                if state.status == "cancelled" or (state.status == "running" and state.run_id)
            }
            if not watched:
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
            for job_id, state in watched.items():
                if job_id not in self.tracked:
                    continue  # decided meanwhile
                if state.status == "cancelled":
                    await self._stop_runs_of(job_id, runs)
                    continue
                run = runs.get(state.run_id or "")
                if run is None:
                    reason = f"Flower run {state.run_id} disappeared from the SuperLink"
                    await self._finish(job_id, c.FailJob(reason=reason))
                elif run.finished:
                    await self._on_run_finished(job_id, run)
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

    async def _on_run_finished(self, job_id: str, run: RunInfo) -> None:
        await self._refresh(job_id)  # the ServerApp's last report may not have reached the feed yet
        state = self.tracked.get(job_id)
        if state is None or state.status != "running" or state.config is None:
            self._settle(job_id)
            return
        rounds = state.config.rounds
        if run.run_id in self.engine.lost_runs and not all_rounds_recorded(state):
            command: JobCommand = c.FailJob(
                reason=f"Flower run {run.run_id} was lost with the flp process that ran it (restart or failover)"
            )
        elif run.status == "finished:completed":
            if all_rounds_recorded(state):
                await self._complete(job_id)
                return
            command = c.FailJob(reason=f"Flower run {run.run_id} ended after {state.round} of {rounds} rounds")
        elif run.status == "finished:stopped":
            command = c.FailJob(reason=f"Flower run {run.run_id} was stopped outside flp")
        else:
            detail = f": {run.details}" if run.details else ""
            command = c.FailJob(reason=f"Flower run {run.run_id} {run.status}{detail}"[:2000])
        await self._finish(job_id, command)

    async def _complete(self, job_id: str) -> None:
        state = self.tracked.get(job_id)
        if state is None:
            return
        command = c.CompleteJob(final_metrics=dict(state.latest_metrics), model_sha256=state.model_sha256)
        await self._finish(job_id, command)

    async def _finish(self, job_id: str, command: JobCommand) -> None:
        state = self.tracked.get(job_id)
        run_id = state.run_id if state is not None else None
        await self._execute(job_id, command, idempotency_key=f"job-{job_id}-run-{run_id}-end")
        await self._refresh(job_id)
        self._settle(job_id)

    # --- helpers ---------------------------------------------------------------------------

    async def _stop_runs_of(self, job_id: str, runs: dict[str, RunInfo] | None = None) -> None:
        """Stop every unfinished run of a cancelled job; forget the job once there is none."""
        if runs is None:
            try:
                runs = await asyncio.to_thread(self.control.list_runs)
            except Exception:
                log.warning("listing Flower runs failed; the watcher retries", exc_info=True)
                return
        unfinished = [r.run_id for r in runs.values() if r.job_id == job_id and not r.finished]
        if not unfinished:
            self._forget(job_id)
            return
        if self._clock() < self._next_stop_at.get(job_id, 0.0):
            return  # asked recently; the run list will show it stopped
        self._next_stop_at[job_id] = self._clock() + STOP_RETRY_INTERVAL_S
        for run_id in unfinished:
            await self._stop_run(run_id)

    async def _stop_run(self, run_id: str) -> None:
        try:
            await asyncio.to_thread(self.control.stop_run, run_id)
            log.info("stopped Flower run %s", run_id)
            self._reap_soon()
        except Exception as exc:  # already finished, or the SuperLink is gone
            log.info("stopping Flower run %s: %s", run_id, exc)

    async def _execute(
        self, job_id: str, command: JobCommand, causation: str | None = None, idempotency_key: str | None = None
    ) -> bool:
        ctx = CommandContext(actor=ACTOR, correlation_id=f"job-{job_id}", causation_id=causation)
        try:
            await self.jobs.execute(job_id, command, ctx, idempotency_key=idempotency_key)
        except DomainError as exc:
            log.info("job %s: %s refused: %s", job_id, type(command).__name__, exc.message)
            return False
        return True


def _open_jobs(doc: dict[str, Any] | None) -> tuple[set[str] | None, int]:
    """(job ids, position) from the stored document; (None, 0) when absent or not as written."""
    if doc is None:
        return None, 0
    job_ids, position = doc.get("job_ids"), doc.get("position")
    if not isinstance(job_ids, list) or not all(isinstance(j, str) for j in job_ids) or not isinstance(position, int):
        log.warning("supervisor: ignoring a malformed %s document", OPEN_JOBS)
        return None, 0
    return set(job_ids), position


def _created_flower_job(recorded: RecordedEvent) -> e.JobCreated | None:
    """The `JobCreated` of a flower job, decoded; None for anything else."""
    if recorded.type != e.JobCreated.type or not recorded.stream_id.startswith("job-"):
        return None
    try:
        event = recorded.to_event()
    except UndecodableEvent as exc:  # the job's stream is faulted: nothing can be decided on it
        log.error("supervisor: %s; job stream not followed", exc)
        return None
    if isinstance(event, e.JobCreated) and event.config.runtime == "flower":
        return event
    return None


def _traceparent(recorded: RecordedEvent) -> str | None:
    found = recorded.metadata.get("traceparent")
    return found if isinstance(found, str) else None
