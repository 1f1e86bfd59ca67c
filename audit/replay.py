"""Re-execute a job's aggregation from its history alone and compare every round's model.

Starting from the initial model recorded in `JobStarted` (v2 provenance), each round is
aggregated again from the recorded client updates (`ClientUpdateReceived.update_sha256`
artifacts, with the recorded `num_examples` as the weighting metric), in the recorded order
(the strategy's aggregation order), by the same Flower strategy class built with the recorded
parameters, on CPU, by one strategy object for the whole job (so FedAdam's moments evolve as
they did; where the ServerApp recorded the strategy's state after a round, as an artifact named
in `RoundCompleted.strategy_state_sha256`, replay's state must hash to it too). The sha256 of
each round's result, encoded as the ServerApp encodes the model it reports (`torch.save` of the
state dict), is compared with the round's recorded `model_sha256`.

A round is
- `match`: the replayed model hashes to the recorded one;
- `diverged`: it does not (with the max abs difference to the recorded model when that artifact
  is there), or an update's artifact does not hash to its name, or a recorded weight is not the
  weight the strategy gives that update;
- `not_re_executable`: something replay needs was not recorded (a job from before provenance, a
  job that kept only the updates' hashes, a missing artifact). Replay stops there.

The strategy's aggregation is Flower's own `aggregate_train`; the one thing replay does in its
place is what FedOpt's `configure_train` does before it (remember the round's starting arrays).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from domain import events as e
from domain.provenance import JobProvenance
from domain.training_job import stream_id
from persistence.ports import ArtifactStore, EventStore
from persistence.records import RecordedEvent, UndecodableEvent

RoundStatus = Literal["match", "diverged", "not_re_executable"]
# Strategies replay may build: the ones flp runs (their aggregation is Flower's own).
REPLAYABLE_CLASSES = frozenset({"FedAvg", "FedProx", "FedAdam"})


@dataclass(slots=True)
class RoundReplay:
    round: int
    status: RoundStatus
    recorded_sha256: str | None
    replayed_sha256: str | None = None
    max_abs_diff: float | None = None
    reason: str = ""
    updates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ReplayReport:
    job_id: str
    ok: bool = False
    re_executable: bool = True
    strategy: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    rounds: list[RoundReplay] = field(default_factory=list)
    first_diverging_round: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "ok": self.ok,
            "re_executable": self.re_executable,
            "strategy": self.strategy,
            "versions": self.versions,
            "rounds": [r.to_dict() for r in self.rounds],
            "first_diverging_round": self.first_diverging_round,
            "reason": self.reason,
        }


@dataclass(slots=True)
class _Round:
    updates: list[e.ClientUpdateReceived] = field(default_factory=list)
    completed: e.RoundCompleted | None = None


@dataclass(slots=True)
class JobHistory:
    """What replay reads from a job's stream."""

    provenance: JobProvenance | None = None
    rounds: dict[int, _Round] = field(default_factory=dict)
    final_sha256: str | None = None
    status: str = "pending"


def read_history(events: Sequence[RecordedEvent]) -> JobHistory:
    history = JobHistory()
    for recorded in events:
        event = recorded.to_event()
        match event:
            case e.JobStarted(provenance=provenance):
                history.provenance = provenance
                history.status = "running"
            case e.ClientUpdateReceived():
                history.rounds.setdefault(event.round, _Round()).updates.append(event)
            case e.RoundCompleted():
                history.rounds.setdefault(event.round, _Round()).completed = event
            case e.JobCompleted(model_sha256=sha):
                history.final_sha256 = sha
                history.status = "completed"
            case e.JobFailed() | e.JobCancelled():
                history.status = "failed" if isinstance(event, e.JobFailed) else "cancelled"
    return history


# --- the arithmetic (flwr, numpy, torch: imported when replay runs) ---------------------------


def model_bytes(state: dict[str, Any]) -> bytes:
    """The ServerApp's model encoding (flp_flower.model.state_bytes): torch.save of the state dict."""
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    return buffer.getvalue()


def load_arrays(data: bytes) -> Any:
    """An update or model artifact as the ArrayRecord the strategy saw."""
    import torch
    from flwr.app import ArrayRecord

    state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    return ArrayRecord(state)


def build_strategy(provenance: JobProvenance) -> Any:
    from flwr.serverapp import strategy as flwr_strategy

    spec = provenance.strategy
    if spec.flower_class not in REPLAYABLE_CLASSES:
        raise ValueError(f"strategy class {spec.flower_class!r} is not one replay can rebuild")
    cls = getattr(flwr_strategy, spec.flower_class)
    return cls(**spec.params)


def aggregate_round(strategy: Any, server_round: int, start: Any, updates: list[tuple[Any, int]]) -> Any:
    """The strategy's `aggregate_train` over replies carrying (ArrayRecord, num_examples), in order."""
    from flwr.app import Message, Metadata, MetricRecord, RecordDict

    if hasattr(strategy, "current_arrays"):  # what FedOpt.configure_train does before aggregation
        strategy.current_arrays = {k: array.numpy() for k, array in start.items()}
    key = strategy.weighted_by_key
    replies = [
        Message(  # type: ignore[call-overload]  # a reply as the SuperLink hands it over (no run needed)
            content=RecordDict({"arrays": arrays, "metrics": MetricRecord({key: num})}),
            metadata=Metadata(
                run_id=0,
                message_id=f"replay-{server_round}-{i}",
                src_node_id=i + 1,
                dst_node_id=0,
                reply_to_message_id="",
                group_id=str(server_round),
                created_at=0.0,
                ttl=0.0,
                message_type="train",
            ),
        )
        for i, (arrays, num) in enumerate(updates)
    ]
    arrays, _ = strategy.aggregate_train(server_round, replies)
    return arrays


def strategy_state_bytes(strategy: Any) -> bytes | None:
    """The strategy's state as the ServerApp records it (flp_flower.contributions.strategy_state_blob):
    torch.save of {"m_t/<key>": tensor, "v_t/<key>": tensor}; None for stateless strategies."""
    import numpy as np
    import torch

    state: dict[str, Any] = {}
    for name in ("m_t", "v_t"):
        for key, array in (getattr(strategy, name, None) or {}).items():
            state[f"{name}/{key}"] = torch.from_numpy(np.array(array, copy=True))
    if not state:
        return None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def max_abs_diff(a: Any, b: Any) -> float | None:
    import numpy as np

    if set(a.keys()) != set(b.keys()):
        return None
    worst = 0.0
    for k in a:
        x, y = a[k].numpy(), b[k].numpy()
        if x.shape != y.shape:
            return None
        if x.size:
            worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))))
    return worst


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the replay --------------------------------------------------------------------------------


async def _artifact(artifacts: ArtifactStore, sha256: str) -> bytes | None:
    try:
        return await artifacts.get(sha256)
    except KeyError:
        return None


async def replay_job(store: EventStore, artifacts: ArtifactStore, job_id: str) -> ReplayReport | None:
    """Replay the job's rounds; None when there is no such job."""
    events = await store.read_stream(stream_id(job_id))
    if not events:
        return None
    report = ReplayReport(job_id=job_id)
    try:
        history = read_history(events)
    except UndecodableEvent as exc:
        report.re_executable = False
        report.reason = f"the history does not decode: {exc}"
        return report
    provenance = history.provenance
    if provenance is None:
        report.re_executable = False
        report.reason = "not re-executable: the job recorded no provenance (no JobStarted v2 with an initial model)"
        return report
    report.strategy = f"{provenance.strategy.name} ({provenance.strategy.flower_class})"
    report.versions = dict(provenance.versions)
    initial = await _artifact(artifacts, provenance.initial_model_sha256)
    if initial is None or _sha(initial) != provenance.initial_model_sha256:
        report.re_executable = False
        report.reason = f"not re-executable: the initial model artifact {provenance.initial_model_sha256} is " + (
            "missing" if initial is None else "not what its name says (edited)"
        )
        return report
    completed = sorted(r for r, rnd in history.rounds.items() if rnd.completed is not None)
    if not completed:
        report.reason = "no round was recorded"
        report.ok = False
        return report
    loaded: dict[str, bytes | None] = {}
    for rnd in history.rounds.values():
        for update in rnd.updates:
            if update.update_sha256 is not None and update.update_sha256 not in loaded:
                loaded[update.update_sha256] = await _artifact(artifacts, update.update_sha256)
    recorded_models: dict[int, bytes | None] = {}
    for r in completed:
        sha = history.rounds[r].completed.model_sha256  # type: ignore[union-attr]
        recorded_models[r] = await _artifact(artifacts, sha) if sha else None
    await asyncio.to_thread(_replay_rounds, report, history, provenance, initial, loaded, recorded_models)
    return report


def _replay_rounds(
    report: ReplayReport,
    history: JobHistory,
    provenance: JobProvenance,
    initial: bytes,
    loaded: dict[str, bytes | None],
    recorded_models: dict[int, bytes | None],
) -> None:
    try:
        strategy = build_strategy(provenance)
    except Exception as exc:
        report.re_executable = False
        report.reason = f"not re-executable: the strategy cannot be rebuilt: {exc}"
        return
    try:
        current = load_arrays(initial)
    except Exception as exc:
        report.re_executable = False
        report.reason = f"not re-executable: the initial model artifact does not load: {exc}"
        return
    for r in sorted(history.rounds):
        rnd = history.rounds[r]
        if rnd.completed is None:
            continue  # a round whose clients failed: no model was recorded
        result = _replay_round(strategy, r, current, rnd, loaded, recorded_models.get(r))
        report.rounds.append(result[0])
        if result[0].status == "not_re_executable":
            report.re_executable = False
            report.reason = f"not re-executable from round {r}: {result[0].reason}" + (
                "" if provenance.keep_client_updates else " (the job kept only hashes: keep_client_updates=false)"
            )
            break
        if result[0].status == "diverged" and report.first_diverging_round is None:
            report.first_diverging_round = r
        current = result[1]
    last = report.rounds[-1] if report.rounds else None
    if (
        history.final_sha256 is not None
        and last is not None
        and last.status == "match"
        and last.recorded_sha256 != history.final_sha256
    ):
        report.reason = f"JobCompleted names model {history.final_sha256}, not the last round's {last.recorded_sha256}"
        report.first_diverging_round = report.first_diverging_round or last.round
    report.ok = (
        report.re_executable
        and report.first_diverging_round is None
        and bool(report.rounds)
        and all(r.status == "match" for r in report.rounds)
    )
    if report.ok:
        report.reason = f"all {len(report.rounds)} rounds re-executed to the recorded models"
    elif not report.reason and report.first_diverging_round is not None:
        report.reason = f"diverged at round {report.first_diverging_round}"


def _replay_round(
    strategy: Any,
    r: int,
    start: Any,
    rnd: _Round,
    loaded: dict[str, bytes | None],
    recorded_model: bytes | None,
) -> tuple[RoundReplay, Any]:
    completed = rnd.completed
    assert completed is not None
    out = RoundReplay(round=r, status="match", recorded_sha256=completed.model_sha256, updates=len(rnd.updates))
    if completed.model_sha256 is None:
        out.status, out.reason = "not_re_executable", "the round recorded no model hash"
        return out, start
    problems: list[str] = []
    inputs: list[tuple[Any, int]] = []
    total = sum(u.num_examples for u in rnd.updates)
    for update in rnd.updates:
        if update.update_sha256 is None:
            out.status = "not_re_executable"
            out.reason = f"client {update.client_id}'s update was not recorded (a job from before update artifacts)"
            return out, start
        data = loaded.get(update.update_sha256)
        if data is None:
            out.status = "not_re_executable"
            out.reason = f"client {update.client_id}'s update artifact {update.update_sha256} is not in the store"
            return out, start
        if _sha(data) != update.update_sha256:
            problems.append(
                f"client {update.client_id}'s update artifact {update.update_sha256[:16]}… does not hash to its name"
                " (edited)"
            )
        expected = update.num_examples / total if total else None
        if update.weight is not None and expected is not None and update.weight != expected:
            problems.append(
                f"client {update.client_id}: recorded weight {update.weight!r} but the strategy gives {expected!r}"
            )
        try:
            inputs.append((load_arrays(data), update.num_examples))
        except Exception as exc:
            problems.append(f"client {update.client_id}'s update artifact does not load: {exc}")
    if len(inputs) != len(rnd.updates) or not inputs:
        out.status, out.reason = "diverged", "; ".join(problems) or "no client update to aggregate"
        return out, start
    try:
        aggregated = aggregate_round(strategy, r, start, inputs)
    except Exception as exc:
        out.status, out.reason = "diverged", "; ".join([*problems, f"the strategy refused the updates: {exc}"])
        return out, start
    blob = model_bytes(aggregated.to_torch_state_dict())
    out.replayed_sha256 = _sha(blob)
    if out.replayed_sha256 != completed.model_sha256:
        problems.append("the re-aggregated model is not the recorded one")
        if recorded_model is not None:
            try:
                out.max_abs_diff = max_abs_diff(aggregated, load_arrays(recorded_model))
            except Exception:
                out.max_abs_diff = None
    else:
        out.max_abs_diff = 0.0
    if completed.strategy_state_sha256 is not None:
        state = strategy_state_bytes(strategy)
        if state is None or _sha(state) != completed.strategy_state_sha256:
            problems.append("the strategy's state after the round (e.g. FedAdam's moments) is not the recorded one")
    if problems:
        out.status, out.reason = "diverged", "; ".join(problems)
    return out, aggregated
