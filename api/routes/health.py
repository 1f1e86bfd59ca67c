"""Health and metrics: store head, projection checkpoints and lag, background services."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from api.deps import PlatformDep
from api.ports import Platform
from api.schemas import Health

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
    )


@router.get("/health", response_model=Health, summary="Liveness and lag")
async def health(container: PlatformDep) -> Health:
    return await health_report(container)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(container: PlatformDep) -> str:
    report = await health_report(container)
    lines = [
        "# TYPE flp_store_head_position gauge",
        f"flp_store_head_position {report.head_position}",
        "# TYPE flp_projection_lag gauge",
    ]
    lines += [f'flp_projection_lag{{projection="{n}"}} {v["lag"]}' for n, v in report.projections.items()]
    lines.append("# TYPE flp_service_lag gauge")
    lines += [
        f'flp_service_lag{{service="{n}"}} {info["lag"]}'
        for n, info in report.services.items()
        if isinstance(info.get("lag"), int | float)
    ]
    lines.append("# TYPE flp_faulted_streams gauge")
    lines.append(f"flp_faulted_streams {len(report.faulted_streams)}")
    lines.append("# TYPE flp_projections_stalled gauge")
    lines.append(f"flp_projections_stalled {int(report.stalled is not None)}")
    lines.append("# TYPE flp_live_subscribers gauge")
    lines.append(f"flp_live_subscribers {container.live.subscriber_count}")
    return "\n".join(lines) + "\n"
