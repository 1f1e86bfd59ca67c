"""The `flp` command line. Every command honours the FLP_ settings; reading commands have --json."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Any, get_args

import click
import typer

from domain.events import JobConfig, Partitioning, Runtime, Strategy
from flp.cli.admin import register as register_admin_commands
from flp.cli.api_client import FlpClient
from flp.cli.fleet import register as register_fleet_commands
from flp.cli.kafka import register as register_kafka_commands
from flp.cli.output import console, err_console, history_table, job_board_table, print_json
from flp.cli.support import JsonOpt, run, with_client
from flp.cli.support import load_settings as settings

app = typer.Typer(help="flp: event-sourced federated learning on Flower.", no_args_is_help=True)
job_app = typer.Typer(help="Start, cancel and inspect training jobs.", no_args_is_help=True)
events_app = typer.Typer(help="The global event feed.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models.", no_args_is_help=True)
app.add_typer(job_app, name="job")
app.add_typer(events_app, name="events")
app.add_typer(projections_app, name="projections")
register_admin_commands(app, job_app)  # users, token, audit, job as-of/diff (flp/cli/admin.py)
register_kafka_commands(app, events_app)  # events consume, project, relay, schema export (flp/cli_kafka.py)
register_fleet_commands(app)  # nodes add/remove/list, pki init (flp/cli/fleet.py)


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        out[key] = value
    return out


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default FLP_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default FLP_API_PORT")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="processes on the port, as replicas on one data dir (flp.workers)")
    ] = 1,
    reuse_port: Annotated[bool, typer.Option(hidden=True, help="one of --workers N: bind with SO_REUSEPORT")] = False,
) -> None:
    """Run the platform: API, projections, live push, Flower runtime."""
    from flp.server import run_fast, serve_forever
    from flp.workers import WorkersFailed, reuse_port_socket, serve_workers

    s = settings()
    s = s.model_copy(update={k: v for k, v in {"api_host": host, "api_port": port}.items() if v is not None})
    if workers > 1:
        try:
            sys.exit(serve_workers(s.api_host, s.api_port, workers))
        except WorkersFailed as exc:
            err_console.print(f"flp serve: {exc}")
            sys.exit(1)
    sockets = None
    if reuse_port:
        try:
            sockets = [reuse_port_socket(s.api_host, s.api_port)]
        except OSError as exc:
            err_console.print(f"flp serve: cannot listen on {s.api_host}:{s.api_port}: {exc.strerror or exc}")
            sys.exit(1)
    run_fast(serve_forever(s, sockets=sockets))


@app.command()
def demo(
    keep_serving: Annotated[bool, typer.Option(help="keep the platform running after the job")] = False,
) -> None:
    """Run the main job end to end on the embedded default, printing progress."""
    from flp.demo import run_demo

    sys.exit(run(run_demo(settings(), keep_serving=keep_serving)))


def _default(field: str) -> Any:
    return JobConfig.model_fields[field].default


def _choice(kind: Any) -> click.Choice[str]:
    return click.Choice(get_args(kind))  # the domain's own Literal: one list of strategies etc.


@job_app.command("start")
def job_start(
    name: Annotated[str, typer.Option(help="a name for people")] = "digits",
    rounds: Annotated[int, typer.Option(min=1)] = 5,
    min_clients: Annotated[int, typer.Option(min=1)] = 2,
    num_clients: Annotated[int, typer.Option(min=1)] = _default("num_clients"),
    strategy: Annotated[str, typer.Option(click_type=_choice(Strategy))] = _default("strategy"),
    model: Annotated[str, typer.Option()] = _default("model"),
    partitioning: Annotated[str, typer.Option(click_type=_choice(Partitioning))] = _default("partitioning"),
    alpha: Annotated[float, typer.Option(help="Dirichlet alpha")] = _default("dirichlet_alpha"),
    seed: Annotated[int, typer.Option()] = _default("seed"),
    runtime: Annotated[str, typer.Option(click_type=_choice(Runtime))] = _default("runtime"),
    param: Annotated[list[str] | None, typer.Option(help="hyper-parameter KEY=VALUE, repeatable")] = None,
    job_id: Annotated[str | None, typer.Option(help="default: generated")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a training job."""
    body = {
        "job_id": job_id,
        "name": name,
        "rounds": rounds,
        "min_clients": min_clients,
        "num_clients": num_clients,
        "strategy": strategy,
        "model": model,
        "partitioning": partitioning,
        "dirichlet_alpha": alpha,
        "seed": seed,
        "runtime": runtime,
        "hyperparameters": _params(param or []),
    }
    result = with_client(lambda c: c.post("/jobs", body))
    new_id = result["events"][0]["data"]["job_id"]
    if as_json:
        print_json(result)
    else:
        console.print(f"job [bold]{new_id}[/bold] created (version {result['version']})")


@job_app.command("cancel")
def job_cancel(
    job_id: str, reason: Annotated[str, typer.Option()] = "cancelled by request", as_json: JsonOpt = False
) -> None:
    """Cancel a job."""
    result = with_client(lambda c: c.post(f"/jobs/{job_id}/cancel", {"reason": reason}))
    if as_json:
        print_json(result)
    else:
        console.print(f"job [bold]{job_id}[/bold] cancelled (version {result['version']})")


@job_app.command("list")
def job_list(
    status: Annotated[str | None, typer.Option(help="only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The job board."""
    page = with_client(lambda c: c.get("/jobs", status=status, limit=limit))
    if as_json:
        print_json(page)
    else:
        console.print(job_board_table(page["items"]))


@job_app.command("show")
def job_show(job_id: str, as_json: JsonOpt = False) -> None:
    """One job in detail: config, per-round metrics, clients."""
    doc = with_client(lambda c: c.get(f"/jobs/{job_id}"))
    if as_json:
        print_json(doc)
        return
    console.print(f"[bold]{doc['job_id']}[/bold] {doc['config']['name']}: {doc['status']}")
    console.print(f"config: {doc['config']}")
    console.print(f"clients: {', '.join(doc['clients']) or '-'}")
    for r in doc["rounds"]:
        metrics = {**r.get("train_metrics", {}), **r.get("evaluate_metrics", {}), **r.get("central_metrics", {})}
        console.print(f"round {r['round']}: {metrics}, failures={len(r['failures'])}")


@job_app.command("history")
def job_history(job_id: str, as_json: JsonOpt = False) -> None:
    """Every event of the job, with who caused it."""

    async def fetch(c: FlpClient) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page: dict[str, Any] = {"next": 1}
        while page["next"] is not None:
            page = await c.get(f"/jobs/{job_id}/events", from_version=page["next"])
            items += page["items"]
        return items

    events = with_client(fetch)
    if as_json:
        print_json(events)
    else:
        console.print(history_table(events, f"History of job {job_id}"))


@job_app.command("state")
def job_state(
    job_id: str,
    version: Annotated[int | None, typer.Option(min=1, help="as of this version (default: now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The job's state as of a version (time travel)."""
    result = with_client(lambda c: c.get(f"/jobs/{job_id}/state", version=version))
    if as_json:
        print_json(result)
    else:
        console.print(result)


@events_app.command("tail")
def events_tail(
    after: Annotated[int, typer.Option(min=0, help="start after this global position")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    follow: Annotated[bool, typer.Option(help="keep waiting for new events")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the global event feed."""

    async def tail(c: FlpClient) -> None:
        position = after
        while True:
            page = await c.get("/events", after=position, limit=limit)
            for e in page["items"]:
                if as_json:
                    print_json(e)
                else:
                    console.print(f"{e['position']:>8} {e['stream_id']:<28} v{e['version']:<4} {e['type']}")
                position = e["position"]
            if not follow:
                return
            if not page["items"]:
                await asyncio.sleep(0.5)

    with_client(tail)


@projections_app.command("rebuild")
def projections_rebuild(
    name: Annotated[str | None, typer.Argument(help="one projection (default: all)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Drop read models and rebuild them from position 0 of the event store."""
    from flp.wiring import build_container
    from projections.registry import PROJECTION_NAMES

    s = settings()
    if name is not None and name not in PROJECTION_NAMES:
        err_console.print(f"[red]unknown projection {name!r}[/red]; known: {', '.join(PROJECTION_NAMES)}")
        raise typer.Exit(1)

    async def rebuild() -> dict[str, Any]:
        container = await build_container(s, with_runtime=False)
        try:
            position = await container.projections.rebuild(container.store, [name] if name else None)
            counts = {
                p.name: await container.read_models.count(p.name)
                for p in container.projections.projections
                if name is None or p.name == name
            }
            return {"position": position, "documents": counts}
        finally:
            await container.stop()

    result = run(rebuild())
    if as_json:
        print_json(result)
    else:
        console.print(f"rebuilt up to position {result['position']}: {result['documents']}")


def main() -> None:
    app()
