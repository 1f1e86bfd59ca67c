"""`flp demo` / `make demo`: the platform's main job, end to end, on the embedded default.

It starts the platform (API, projections, live push and, when available, the Flower runtime),
starts a job through the real HTTP API and follows its progress over the live SSE stream, then
prints the job board and the job's full history.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from api.auth.client import credentials_hint
from api.auth.service import read_admin_credentials
from config.settings import Settings
from flp.cli.api_client import auth_headers
from flp.cli.output import console, fmt_metrics, history_table, job_board_table
from flp.cli.sse_client import LiveDocs, read_sse
from flp.server import running_server

TERMINAL = {"completed", "failed", "cancelled"}
DEMO_JOB: dict[str, Any] = {
    "name": "digits-fedavg",
    "model": "mlp",
    "strategy": "fedavg",
    "rounds": 5,
    "min_clients": 3,
    "num_clients": 3,
    "partitioning": "iid",
    "seed": 42,
    "hyperparameters": {"lr": 0.1, "batch_size": 32, "local_epochs": 1},
}


async def scripted_rounds(http: httpx.AsyncClient, job_id: str, rounds: int, clients: list[str]) -> None:
    """Plays the FL runtime's part over the API when no Flower runtime is configured."""
    rng = random.Random(42)
    for client_id in clients:
        (await http.post(f"/jobs/{job_id}/clients", json={"client_id": client_id})).raise_for_status()
    accuracy = 0.5
    for rnd in range(1, rounds + 1):
        accuracy = min(0.99, accuracy + rng.uniform(0.05, 0.12))
        body = {
            "round": rnd,
            "results": [
                {"client_id": c, "num_examples": 480, "metrics": {"train_loss": round(1.5 / rnd, 4)}} for c in clients
            ],
            "train_metrics": {"train_loss": round(1.5 / rnd, 4)},
            "central_metrics": {"accuracy": round(accuracy, 4), "loss": round(1.2 / rnd, 4)},
            "duration_s": 0.1,
        }
        headers = {"Idempotency-Key": f"job-{job_id}-round-{rnd}"}
        (await http.post(f"/jobs/{job_id}/rounds", json=body, headers=headers)).raise_for_status()
        await asyncio.sleep(0.2)
    final = {"accuracy": round(accuracy, 4)}
    (await http.post(f"/jobs/{job_id}/complete", json={"final_metrics": final})).raise_for_status()


async def follow_job(http: httpx.AsyncClient, job_id: str, rounds: int) -> dict[str, Any]:
    """Show a progress bar driven by the job's live stream until the job ends."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task(f"job {job_id}", total=rounds, info="waiting for the first round")
        shown = 0
        live = LiveDocs()
        async for message in read_sse(http, f"/live/jobs/{job_id}"):
            doc = live.apply(message)
            if doc is None:
                continue
            for r in doc["rounds"]:
                if r.get("completed") and r["round"] > shown:
                    shown = r["round"]
                    metrics = {**r.get("evaluate_metrics", {}), **r.get("central_metrics", {})}
                    progress.console.print(f"  round {shown}/{rounds}: {fmt_metrics(metrics)}")
                    progress.update(task, completed=shown, info=fmt_metrics(r.get("central_metrics", {})))
            if doc["status"] in TERMINAL:
                progress.update(task, info=doc["status"])
                return dict(doc)
    raise RuntimeError("live stream ended before the job finished")


def dashboard_hint(settings: Settings, url: str) -> str:
    """Where the dashboard is and how to log in (the generated admin's credentials, on the
    embedded default where this demo wrote them itself)."""
    if not settings.auth_enabled:
        return f"[bold]dashboard:[/bold] {url}/ui  (auth is off)"
    creds = read_admin_credentials(settings)
    if creds is None:
        return f"[bold]dashboard:[/bold] {url}/ui  (log in as admin; {credentials_hint(settings)})"
    return f"[bold]dashboard:[/bold] {url}/ui  (log in as {creds['username']} / {creds['password']})"


def demo_settings(settings: Settings) -> Settings:
    """The demo's engine: Flower's deployment engine (real SuperNode processes, one per client)
    unless FLP_FLOWER_MODE names another (or the settings rule it out: a secured SuperLink, fewer
    SuperNodes than the job's clients). For a small job it is the faster one from a cold start
    too (README, "The FL runtime"); `flp serve` keeps the simulation engine as its default, which
    takes any number of virtual clients."""
    if "flower_mode" in settings.model_fields_set:
        return settings
    if settings.flower_secured or settings.flower_supernodes < DEMO_JOB["num_clients"]:
        return settings  # a secured SuperLink takes registered devices only; too few nodes for the job
    return settings.model_copy(update={"flower_mode": "deployment"})


async def run_demo(settings: Settings, *, keep_serving: bool = False) -> int:
    settings = demo_settings(settings)
    async with running_server(settings) as srv:
        console.print(f"[bold green]flp is up[/bold green] at {srv.url}  (API docs: {srv.url}/docs)")
        console.print(f"data dir: {settings.data_dir.resolve()}")
        console.print(credentials_hint(settings))
        console.print(dashboard_hint(settings, srv.url))
        flower = srv.container.runtime is not None
        async with httpx.AsyncClient(base_url=srv.url, headers=auth_headers(settings), timeout=60.0) as http:
            body = {**DEMO_JOB, "runtime": "flower" if flower else "external"}
            created = (await http.post("/jobs", json=body)).raise_for_status().json()
            job_id = created["events"][0]["data"]["job_id"]
            runtime = f"Flower runtime, {settings.flower_mode} engine" if flower else "scripted runtime"
            console.print(f"started job [bold]{job_id}[/bold] ({runtime})")
            bearer = '-H "Authorization: Bearer $(flp token issue --user admin)"'
            console.print(f"watch it live: curl -N {bearer} {srv.url}/live/jobs/{job_id}")
            driver = None
            if not flower:
                driver = asyncio.create_task(
                    scripted_rounds(http, job_id, body["rounds"], ["edge-1", "edge-2", "edge-3"])
                )
            detail = await follow_job(http, job_id, body["rounds"])
            if driver is not None:
                await driver
            board = (await http.get("/jobs")).json()["items"]
            history = (await http.get(f"/jobs/{job_id}/events")).json()["items"]
        console.print(job_board_table(board))
        console.print(history_table(history, f"History of job {job_id}"))
        final = detail.get("final_metrics") or {}
        console.print(f"job {job_id} {detail['status']}; final metrics: {fmt_metrics(final) or '-'}")
        accuracy = final.get("central_acc", final.get("accuracy"))
        if accuracy is not None:
            console.print(f"[bold]final central accuracy: {accuracy:.4f}[/bold]")
        console.print(f"read its history again: flp job history {job_id}   (or GET {srv.url}/jobs/{job_id}/events)")
        if keep_serving:
            console.print(dashboard_hint(settings, srv.url))
            console.print("serving until Ctrl-C")
            await asyncio.Event().wait()
        return 0 if detail["status"] == "completed" else 1
