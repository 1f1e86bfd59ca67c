# ruff: noqa: E501  (the embedded wrk Lua scripts keep their own line lengths)
"""HTTP load benchmark: flp's command and query paths beside a bare FastAPI app, in one run.

    python bench/api_load.py [--duration 10] [--connections 32] [--subscribers 100] [--workers 1]

Starts a real `flp serve` (durable SQLite, sealing on, Flower off, rate limit lifted) and the
anchor (bench/anchor_app.py: a bare FastAPI app on the same uvicorn whose POST validates the
same JSON body) on free loopback ports, drives both with `wrk` (Debian's package: apt-get
install wrk), and prints one JSON line: requests/s, p50/p99 latency and non-2xx answers per
path, their ratios, one client's POST /jobs latency, and the live lag (append -> SSE message
received) seen by N subscribers while POST /jobs runs at full load, and again while it is paced to
half of flp's full-load rate (the pipeline's own lag, apart from a saturated server's queueing).

This machine's speed drifts by up to 2x within minutes, so every ratio comes from runs in
A-B-B-A order (anchor, flp, flp, anchor; half the duration each) and sums them: a drift that is
steady over the four runs cancels out. `runs` keeps each run's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# wrk scripts. Each prints one JSON line in done(); POST bodies carry per-thread unique ids.
SUMMARY = """
function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format('{"requests": %d, "seconds": %.3f, "non_2xx_or_errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, summary.duration / 1e6, errors, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""
THREADS = """
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end
"""
POST_JOBS = (
    THREADS
    + """
local n = 0
local run = os.getenv("FLP_BENCH_RUN") or ""
function request()
  n = n + 1
  local body = string.format('{"job_id": "b%s%d-%d", "name": "load", "rounds": 3, "min_clients": 1, "runtime": "external"}', run, tid, n)
  return wrk.format("POST", "/jobs", {["Content-Type"] = "application/json", ["Authorization"] = os.getenv("FLP_BENCH_AUTH")}, body)
end
"""
    + SUMMARY
)
POST_ROUNDS = (
    THREADS
    + """
local n = 0
local pool = tonumber(os.getenv("FLP_BENCH_POOL"))
function request()
  local job = n % pool
  local round = math.floor(n / pool) + 1 + (tonumber(os.getenv("FLP_BENCH_ROUND_BASE")) or 0)
  n = n + 1
  local body = string.format('{"round": %d, "results": [{"client_id": "a", "num_examples": 10, "metrics": {"loss": 0.5}}], "central_metrics": {"accuracy": 0.9}}', round)
  return wrk.format("POST", string.format("/jobs/r%d-%d/rounds", tid, job),
    {["Content-Type"] = "application/json", ["Authorization"] = os.getenv("FLP_BENCH_AUTH")}, body)
end
"""
    + SUMMARY
)
# Paced load: exponential pauses (Poisson arrivals) around the mean. A fixed pause kept the 32
# connections in lockstep, so the "paced" rate came as bursts of 32 commands at once.
PACED = """
local pause = tonumber(os.getenv("FLP_BENCH_DELAY_MS"))
local seeded = false
function delay()
  if not seeded then
    math.randomseed(os.time() * 1000 + tid * 7919)
    seeded = true
  end
  return -math.log(1 - math.random()) * pause
end
"""
GET = (
    """
function request()
  return wrk.format("GET", os.getenv("FLP_BENCH_PATH"), {["Authorization"] = os.getenv("FLP_BENCH_AUTH")})
end
"""
    + SUMMARY
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wrk(
    url: str, script: str, tmp: Path, *, threads: int, connections: int, duration: int, env: dict[str, str]
) -> dict[str, Any]:
    path = tmp / f"script-{abs(hash(script))}.lua"
    path.write_text(script)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(path), url],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    line = next(x for x in reversed(out.stdout.splitlines()) if x.startswith("{"))
    result: dict[str, Any] = json.loads(line)
    result["per_s"] = round(result["requests"] / result["seconds"])
    return result


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one path as one: their requests over their seconds, the worst p99, the
    mean p50, and each run."""
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    return {
        "requests": requests,
        "seconds": round(seconds, 3),
        "non_2xx_or_errors": sum(r["non_2xx_or_errors"] for r in runs),
        "p50_ms": round(sum(r["p50_ms"] for r in runs) / len(runs), 3),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "per_s": round(requests / seconds),
        "runs": [r["per_s"] for r in runs],
    }


MARK = b'"updated_at":"'


async def sse_lag(url: str, auth: str, subscribers: int, seconds: float) -> dict[str, Any]:
    """N subscribers of the job board; for each new job's message, now - the event's recorded_at.
    They resume from the store's head (Last-Event-ID), as a reconnecting dashboard does, so the
    thousands of jobs the earlier phases created are not replayed to each of them first.

    Each subscriber is a plain asyncio socket that reads raw chunks and only looks for each new
    job's `"updated_at":"..."` (a document; patches name it as a path). Through httpx, this process
    spent twice the CPU and measured twice the p50 lag of the same server: at 100 subscribers
    its own reading, not the server, was much of what it measured. `receiver_cpu_s` says what
    reading cost here."""
    lags: list[float] = []
    refused: list[str] = []
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": auth}) as probe:
        head = str((await probe.get("/health")).json()["head_position"])
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"GET /live/jobs HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
        f"Accept: text/event-stream\r\nLast-Event-ID: {head}\r\n\r\n"
    ).encode()

    async def subscriber(stop: float) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            first = b""
            while b"\r\n\r\n" not in first and (more := await reader.read(1 << 16)):
                first += more  # the response's status line and headers, maybe some body after them
            if not first.startswith(b"HTTP/1.1 200"):
                refused.append(repr(first[:200]))
                return
            pending = first[first.index(b"\r\n\r\n") + 4 :]
            live = False  # the replay of existing documents comes first; measure what follows
            while chunk := await reader.read(1 << 16):
                now = time.time()
                data = pending + chunk
                end = data.rfind(b"\r\n\r\n")  # complete messages end here (each send is one chunk)
                if end < 0:
                    pending = data
                    continue
                complete, pending = data[: end + 4], data[end + 4 :]
                if not live:
                    marker = complete.find(b"event: live")
                    if marker < 0:
                        continue
                    live, complete = True, complete[marker:]
                at = complete.find(MARK)
                while at >= 0:
                    start = at + len(MARK)
                    stamp = complete[start : complete.index(b'"', start)].decode()
                    lags.append(now - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
                    at = complete.find(MARK, start)
                if time.monotonic() > stop:
                    return
        finally:
            writer.close()

    started = time.process_time()
    stop = time.monotonic() + seconds
    tasks = [asyncio.create_task(subscriber(stop)) for _ in range(subscribers)]
    await asyncio.sleep(seconds + 1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    receiver_cpu_s = round(time.process_time() - started, 2)
    lags.sort()
    if not lags:
        return {"subscribers": subscribers, "messages": 0, "refused": refused[:3]}
    return {
        "subscribers": subscribers,
        "messages": len(lags),
        "p50_ms": round(lags[len(lags) // 2] * 1000, 2),
        "p99_ms": round(lags[int(len(lags) * 0.99)] * 1000, 2),
        "receiver_cpu_s": receiver_cpu_s,
    }


def _loaded(
    url: str, auth: str, args: argparse.Namespace, tmp: Path, script: str, env: dict[str, str], seconds: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """wrk's figures and the subscribers' (in their own process) for one run of `seconds`."""
    here = str(Path(__file__).parent)
    code = (
        f"import asyncio, json, sys; sys.path.insert(0, {here!r}); from api_load import sse_lag; "
        f"print(json.dumps(asyncio.run(sse_lag({url!r}, {auth!r}, {args.subscribers}, {float(seconds)}))))"
    )
    receivers = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)  # the subscribers connect
    load = wrk(url, script, tmp, threads=2, connections=args.connections, duration=seconds, env=env)
    out, _ = receivers.communicate(timeout=seconds + 60)
    lag: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return load, lag


def sse_under_load(
    url: str, auth: str, args: argparse.Namespace, tmp: Path, rate: float | None = None
) -> dict[str, Any]:
    """The subscribers run in their own process, beside wrk's POST /jobs load: at full load, or
    paced to `rate` commands/s (wrk's `delay()` between one connection's requests, exponential
    around the mean so arrivals are Poisson and not bursts), which shows the pipeline's own lag
    apart from the queueing of a saturated server. A connection's cycle is its pause plus the
    request's latency, so a short paced run (with the subscribers) measures that latency first and
    the pauses become what is left of the cycle `rate` asks for."""
    script, env = POST_JOBS, {"FLP_BENCH_AUTH": auth, "FLP_BENCH_RUN": "live" if rate is None else "paced"}
    if rate is not None:
        script += PACED
        cycle_ms = 1000 * args.connections / rate
        env["FLP_BENCH_DELAY_MS"] = f"{cycle_ms:.3f}"
        trial, _ = _loaded(url, auth, args, tmp, script, {**env, "FLP_BENCH_RUN": "trial"}, 3)
        latency_ms = max(0.0, 1000 * args.connections / max(1, trial["per_s"]) - cycle_ms)
        env["FLP_BENCH_DELAY_MS"] = f"{max(0.0, cycle_ms - latency_ms):.3f}"
    load, result = _loaded(url, auth, args, tmp, script, env, args.duration)
    result["commands_per_s_meanwhile"] = load["per_s"]
    result["commands_refused_meanwhile"] = load["non_2xx_or_errors"]
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        flp_port, anchor_port = free_port(), free_port()
        env = {
            **os.environ,
            "FLP_DATA_DIR": str(tmp / "flp"),
            "FLP_API_PORT": str(flp_port),
            "FLP_FLOWER_MODE": "off",
            "FLP_RATE_LIMIT_PER_MINUTE": "0",
            "OTEL_SDK_DISABLED": "true",
        }
        flp_url, anchor_url = f"http://127.0.0.1:{flp_port}", f"http://127.0.0.1:{anchor_port}"
        anchor_cmd = [str(BIN / "uvicorn"), "--app-dir", str(ROOT / "bench"), "anchor_app:app", "--port",
                      str(anchor_port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
        with (
            process([str(BIN / "flp"), "serve", "--workers", str(args.workers)], env, tmp / "flp.log"),
            process(anchor_cmd, env, tmp / "anchor.log"),
        ):
            wait_up(flp_url)
            wait_up(anchor_url)
            from api.auth.principal import Role
            from api.auth.service import ADMIN_USER
            from api.auth.tokens import issue_token
            from config.settings import Settings

            token = issue_token(Settings(data_dir=tmp / "flp"), ADMIN_USER, [Role.ADMIN], kind="user", ttl_seconds=3600)
            auth = f"Bearer {token}"
            pool = 4 * args.connections
            with httpx.Client(base_url=flp_url, headers={"Authorization": auth}) as http:
                for t in (1, 2):
                    for j in range(pool):
                        body = {
                            "job_id": f"r{t}-{j}",
                            "name": "r",
                            "rounds": 10000,
                            "min_clients": 1,
                            "runtime": "external",
                        }
                        assert http.post("/jobs", json=body).status_code == 201
            load = {"threads": 2, "connections": args.connections, "duration": max(2, (args.duration + 1) // 2)}
            e = {"FLP_BENCH_AUTH": auth}
            rounds = {**e, "FLP_BENCH_POOL": str(pool)}
            # the POSTs: anchor, flp POST /jobs, flp rounds, flp rounds, flp POST /jobs, anchor
            post_anchor = [wrk(anchor_url, POST_JOBS, tmp, **load, env=e)]
            post_flp = [wrk(flp_url, POST_JOBS, tmp, **load, env={**e, "FLP_BENCH_RUN": "many1"})]
            post_rounds = [wrk(flp_url, POST_ROUNDS, tmp, **load, env=rounds)]
            base = post_rounds[0]["requests"] // pool + 2  # the second run's rounds follow the first's
            post_rounds.append(
                wrk(flp_url, POST_ROUNDS, tmp, **load, env={**rounds, "FLP_BENCH_ROUND_BASE": str(base)})
            )
            post_flp.append(wrk(flp_url, POST_JOBS, tmp, **load, env={**e, "FLP_BENCH_RUN": "many2"}))
            post_anchor.append(wrk(anchor_url, POST_JOBS, tmp, **load, env=e))
            paths: dict[str, dict[str, Any]] = {
                "post_jobs": {"anchor": combined(post_anchor), "flp": combined(post_flp)},
                "post_rounds": {"flp": combined(post_rounds)},
            }
            for name, path in (("get_jobs", "/jobs?limit=10"), ("get_job", "/jobs/r1-0"), ("get_health", "/health")):
                g = {**e, "FLP_BENCH_PATH": path}
                a1, f1, f2, a2 = (
                    wrk(url, GET, tmp, **load, env=g) for url in (anchor_url, flp_url, flp_url, anchor_url)
                )
                paths[name] = {"anchor": combined([a1, a2]), "flp": combined([f1, f2])}
            one = {"threads": 1, "connections": 1, "duration": max(3, args.duration // 2)}
            single = wrk(flp_url, POST_JOBS, tmp, **one, env={**e, "FLP_BENCH_RUN": "one"})
            lag = sse_under_load(flp_url, auth, args, tmp)
            paced_rate = max(1, paths["post_jobs"]["flp"]["per_s"]) / 2
            lag_paced = {"rate_per_s": round(paced_rate), **sse_under_load(flp_url, auth, args, tmp, paced_rate)}
    anchor_post = paths["post_jobs"]["anchor"]["per_s"]
    ratios = {
        "post_jobs": paths["post_jobs"]["flp"]["per_s"] / anchor_post,
        "post_rounds": paths["post_rounds"]["flp"]["per_s"] / anchor_post,
        "get_jobs": paths["get_jobs"]["flp"]["per_s"] / paths["get_jobs"]["anchor"]["per_s"],
        "get_job": paths["get_job"]["flp"]["per_s"] / paths["get_job"]["anchor"]["per_s"],
        "get_health": paths["get_health"]["flp"]["per_s"] / paths["get_health"]["anchor"]["per_s"],
    }
    return {
        "workers": args.workers,
        "connections": args.connections,
        "duration_s": args.duration,
        "paths": paths,
        "one_client_post_jobs": {"p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"], "per_s": single["per_s"]},
        "live_lag": lag,
        "live_lag_at_half_rate": lag_paced,
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "goals": {
            "post_jobs": 0.4,
            "post_rounds": 0.4,
            "post_p99_ms": 50,
            "get_jobs": 0.5,
            "get_job": 0.5,
            "one_client_p50_ms": 2,
            "live_lag_p99_ms": 20,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured path")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument(
        "--workers", type=int, default=1, help="flp serve --workers N (the goals are for one process, the default)"
    )
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
