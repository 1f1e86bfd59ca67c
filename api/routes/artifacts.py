"""Model artifacts: content-addressed upload (`PUT /artifacts/{sha256}`) and download, plus
`GET /jobs/{id}/model` for a job's final (or latest) model."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from api.deps import ArtifactsDep, JobsDep
from api.errors import NotFound
from domain.values import ID_PATTERN

router = APIRouter(tags=["artifacts"])
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
JobId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
OCTETS = "application/octet-stream"


@router.put("/artifacts/{sha256}", status_code=201, summary="Upload an artifact; the body must hash to sha256")
async def put_artifact(sha256: Sha256, request: Request, store: ArtifactsDep) -> Response:
    body = await request.body()
    if len(body) > MAX_ARTIFACT_BYTES:
        return Response(status_code=413)
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha256:
        return Response(
            f'{{"title":"Hash Mismatch","status":422,"detail":"body hashes to {actual}"}}',
            status_code=422,
            media_type="application/problem+json",
        )
    existed = await store.exists(sha256)
    await store.put(body)
    return Response(status_code=200 if existed else 201, headers={"Location": f"/artifacts/{sha256}"})


@router.get("/artifacts/{sha256}", summary="Download an artifact", response_class=Response)
async def get_artifact(sha256: Sha256, store: ArtifactsDep) -> Response:
    try:
        data = await store.get(sha256)
    except KeyError:
        raise NotFound(f"artifact {sha256} not found") from None
    return Response(data, media_type=OCTETS, headers={"ETag": f'"{sha256}"'})


@router.get("/jobs/{job_id}/model", summary="The job's final model (torch.save state dict)", response_class=Response)
async def get_job_model(job_id: JobId, jobs: JobsDep, store: ArtifactsDep) -> Response:
    _, state = await jobs.load(job_id)
    if not state.exists:
        raise NotFound(f"job {job_id} not found")
    if state.model_sha256 is None:
        raise NotFound(f"job {job_id} has no model yet")
    try:
        data = await store.get(state.model_sha256)
    except KeyError:
        raise NotFound(f"artifact {state.model_sha256} of job {job_id} is missing") from None
    return Response(
        data,
        media_type=OCTETS,
        headers={
            "ETag": f'"{state.model_sha256}"',
            "X-Model-Sha256": state.model_sha256,
            "X-Job-Status": str(state.status),
            "Content-Disposition": f'attachment; filename="{job_id}-model.pt"',
        },
    )
