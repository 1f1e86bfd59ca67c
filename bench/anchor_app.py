"""The anchor for bench/api_load.py: a bare FastAPI app on the same uvicorn, whose POST validates
the same JSON body as flp's POST /jobs, and whose GETs answer small JSON documents."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from api.schemas import StartJobRequest

app = FastAPI()
ROW = {"job_id": "j", "name": "n", "status": "running", "round": 1, "clients": ["a", "b"], "latest_metrics": {}}


@app.post("/jobs", status_code=201)
async def start_job(body: StartJobRequest) -> dict[str, Any]:
    return {"stream_id": f"job-{body.job_id}", "version": 1, "events": []}


@app.get("/jobs")
async def list_jobs() -> dict[str, Any]:
    return {"items": [ROW] * 10, "total": 10, "limit": 10, "offset": 0}


@app.get("/jobs/{job_id}")
async def get_job(job_id: str) -> dict[str, Any]:
    return {**ROW, "job_id": job_id}


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
