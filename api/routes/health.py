"""Health (store head, projection checkpoints and lag, faults, background services) and the
Prometheus exposition of telemetry/metrics.py."""

from __future__ import annotations

from typing import get_args

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import PlatformDep
from api.ports import Platform
from api.schemas import Health
from domain.events import JobStatus
from telemetry import metrics

router = APIRouter(tags=["health"])


async def health_report(container: Platform) -> Health:
    head = await container.store.head_position()
    projections = {}
    for p in container.projections.projections:
        checkpoint = await container.read_models.get_checkpoint(p.name)
        projections[p.name] = {"checkpoint": checkpoint, "lag": head - checkpoint}
    services = {s.name: (s.info() if s.info else {}) for s in container.services}
    runner = container.projections
    faults = [f.to_dict() for f in runner.faults.values()]
    return Health(
        status="degraded" if faults or runner.stalled else "ok",
        head_position=head,
        projections=projections,
        stalled=runner.stalled,
        faulted_streams=faults,
        services=services,
        replica=container.replica,
    )


@router.get("/health", response_model=Health, summary="Liveness and lag")
async def health(container: PlatformDep) -> Health:
    return await health_report(container)


async def refresh_gauges(platform: Platform) -> Health:
    """Set the gauges that describe state (lags, jobs by status, faults, subscribers, owners)
    just before a scrape; the counters and histograms move where things happen."""
    report = await health_report(platform)
    metrics.STORE_HEAD.set(report.head_position)
    for name, info in report.projections.items():
        metrics.PROJECTION_LAG.labels(name).set(info["lag"])
    metrics.FAULTED_STREAMS.set(len(report.faulted_streams))
    metrics.PROJECTIONS_STALLED.set(int(report.stalled is not None))
    metrics.LIVE_SUBSCRIBERS.set(platform.live.subscriber_count)
    for status in get_args(JobStatus):
        metrics.JOBS.labels(status).set(await platform.read_models.count("job_board", {"status": status}))
    running = await platform.read_models.list_docs("job_board", 1000, 0, {"status": "running"})
    accuracies = [d["latest_metrics"]["accuracy"] for d in running if "accuracy" in d.get("latest_metrics", {})]
    for stat, value in (
        ("mean", sum(accuracies) / len(accuracies) if accuracies else float("nan")),
        ("min", min(accuracies, default=float("nan"))),
        ("max", max(accuracies, default=float("nan"))),
    ):
        metrics.RUNNING_ACCURACY.labels(stat).set(value)
    relay = report.services.get("kafka_relay")
    if relay and isinstance(relay.get("lag"), int | float):
        metrics.RELAY_LAG.set(relay["lag"])
    return report


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics (bearer: the scrape credential in FLP_METRICS_TOKEN_FILE)",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def prometheus_metrics(platform: PlatformDep) -> Response:
    await refresh_gauges(platform)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
