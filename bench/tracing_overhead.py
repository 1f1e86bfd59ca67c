"""What tracing costs on the command path: POST /jobs per second through a real `flp serve`
with tracing off (no OTLP endpoint) and on (sampler always_on, exporting over OTLP/HTTP), in one
run, alternating to even out the machine's noise. The spans go to a sink in its own process that
answers every export and decodes nothing: what is measured is flp's cost of tracing (create,
encode, send), not a collector's, which in production runs elsewhere. (The tests use a real,
decoding receiver.)

    python bench/tracing_overhead.py [--duration 8] [--rounds 2]

Prints one JSON line. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from api_load import BIN, POST_JOBS, free_port, process, wait_up, wrk  # noqa: E402


def measure(tmp: Path, env_extra: dict[str, str], duration: int) -> float:
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=tmp))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        {
            "FLP_DATA_DIR": str(data),
            "FLP_API_PORT": str(port),
            "FLP_FLOWER_MODE": "off",
            "FLP_RATE_LIMIT_PER_MINUTE": "0",
            **env_extra,
        }
    )
    url = f"http://127.0.0.1:{port}"
    with process([str(BIN / "flp"), "serve"], env, data / "serve.log"):
        wait_up(url)
        from api.auth.principal import Role
        from api.auth.service import ADMIN_USER
        from api.auth.tokens import issue_token
        from config.settings import Settings

        token = issue_token(Settings(data_dir=data), ADMIN_USER, [Role.ADMIN], kind="user", ttl_seconds=3600)
        result = wrk(url, POST_JOBS, tmp, threads=2, connections=32, duration=duration,
                     env={"FLP_BENCH_AUTH": f"Bearer {token}"})  # fmt: skip
    return float(result["per_s"])


SINK = """
import asyncio, sys
exports = 0
async def handle(reader, writer):
    global exports
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            sizes = [l.split(b":")[1] for l in head.lower().split(b"\\r\\n") if l.startswith(b"content-length:")]
            length = int(sizes[0]) if sizes else 0
            await reader.readexactly(length)
            exports += 1
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    async with server:
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_future(), float(sys.argv[2]))
        except TimeoutError:
            print(exports)
asyncio.run(main())
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    otlp_port = free_port()
    lifetime = args.rounds * 2 * (args.duration + 20)
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(otlp_port), str(lifetime)], stdout=subprocess.PIPE, text=True
    )
    on = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_SERVICE_NAME": "flp-bench",
    }
    off: list[float] = []
    traced: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for _ in range(args.rounds):
                off.append(measure(tmp, {}, args.duration))
                traced.append(measure(tmp, on, args.duration))
    finally:
        sink.terminate()
        sink.wait()
    off_median, on_median = statistics.median(off), statistics.median(traced)
    return {
        "post_jobs_per_s_tracing_off": round(off_median),
        "post_jobs_per_s_tracing_on": round(on_median),
        "overhead": round(1 - on_median / off_median, 3),
        "runs": {"off": off, "on": traced},
        "goal_overhead_at_most": 0.10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
