"""What tracing costs on the command path: POST /jobs per second through a real `flp serve`
with tracing off (no OTLP endpoint) and on (sampler always_on, exporting to a real OTLP/HTTP
receiver on loopback), in one run, alternating to even out the machine's noise.

    python bench/tracing_overhead.py [--duration 8] [--rounds 2]

Prints one JSON line. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from oteltap import OtelTapHttpProtobufReceiver, OtelTapHttpProtobufReceiverSettings

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


async def run(args: argparse.Namespace) -> dict[str, Any]:
    otlp_port = free_port()
    settings = OtelTapHttpProtobufReceiverSettings(http_port=otlp_port)
    received = 0
    async with OtelTapHttpProtobufReceiver(settings) as receiver:

        async def count() -> None:
            nonlocal received
            async for _ in receiver.stream_traces():
                received += 1

        counter = asyncio.create_task(count())
        on = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_SERVICE_NAME": "flp-bench",
        }
        off: list[float] = []
        traced: list[float] = []
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for _ in range(args.rounds):
                off.append(await asyncio.to_thread(measure, tmp, {}, args.duration))
                traced.append(await asyncio.to_thread(measure, tmp, on, args.duration))
        counter.cancel()
    off_median, on_median = statistics.median(off), statistics.median(traced)
    return {
        "post_jobs_per_s_tracing_off": round(off_median),
        "post_jobs_per_s_tracing_on": round(on_median),
        "overhead": round(1 - on_median / off_median, 3),
        "runs": {"off": off, "on": traced},
        "spans_received": received,
        "goal_overhead_at_most": 0.10,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
