"""A real Flower job (deployment engine, as `make demo` runs it): every round the ServerApp reports joins the job's
trace (POST /jobs -> the supervisor's flower.run.start -> each RecordRoundResult), and a scrape
of /metrics afterwards parses and shows the counters moved by exactly the job's amounts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import Spans, client, serve
from tests.observability.test_traces import by_trace

ROUNDS = 3


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_a_flower_job_is_one_trace_and_moves_the_metrics(tmp_path: Path, otlp: tuple[Spans, int]) -> None:
    spans, port = otlp
    with serve(tmp_path / "flp", port, FLP_FLOWER_MODE="deployment", FLP_FLOWER_REPLY_TIMEOUT_S="120") as served:
        async with client(served) as http:
            body = {"job_id": "fl", "name": "traced", "rounds": ROUNDS, "min_clients": 1, "num_clients": 2, "seed": 7}
            assert (await http.post("/jobs", json=body)).status_code == 201
            deadline = time.monotonic() + 240
            while (await http.get("/jobs/fl")).json()["status"] not in ("completed", "failed"):
                assert time.monotonic() < deadline, "the job did not finish"
                await asyncio.sleep(0.5)
            assert (await http.get("/jobs/fl")).json()["status"] == "completed"

            def job_trace_complete(found: list[Any]) -> bool:
                return any(
                    {"command StartJob", "flower.run.start", "command CompleteJob"} <= {s.name for s in group}
                    and sum(s.name == "command RecordRoundResult" for s in group) == ROUNDS
                    for group in by_trace(found).values()
                )

            try:
                found = await spans.until(job_trace_complete, timeout_s=60)
            except TimeoutError:
                raise AssertionError({t: sorted(s.name for s in g) for t, g in by_trace(spans.seen).items()}) from None
            rounds = [s for s in found if s.name == "command RecordRoundResult"]
            assert len({s.trace_id for s in rounds}) == 1  # every round in one trace ...
            (start,) = [s for s in found if s.name == "command StartJob"]
            assert rounds[0].trace_id == start.trace_id  # ... the job's, begun by POST /jobs
            (run,) = [s for s in found if s.name == "flower.run.start"]
            attrs = {a.key: a.value.string_value for a in run.attributes}
            assert attrs["flp.job_id"] == "fl" and attrs["flower.run_id"]

            # the scrape: Prometheus' text format, parsed by prometheus_client's own parser
            async with httpx.AsyncClient(base_url=served.url, headers=served.scrape_headers()) as scraper:
                scraped = await scraper.get("/metrics")
            assert scraped.status_code == 200
            got = samples(scraped.text)
            assert got[("flp_round_duration_seconds_count", ())] == ROUNDS
            assert got[("flp_rounds_completed_total", ())] == ROUNDS
            assert got[("flp_round_clients_count", ())] == ROUNDS
            assert got[("flp_commands_total", (("command", "RecordRoundResult"), ("outcome", "appended")))] == ROUNDS
            assert got[("flp_commands_total", (("command", "StartJob"), ("outcome", "appended")))] == 1
            assert got[("flp_jobs", (("status", "completed"),))] == 1
            assert got[("flp_events_appended_total", (("type", "RoundCompleted"),))] == ROUNDS
            route = (("method", "POST"), ("route", "/jobs/{job_id}/rounds"), ("status", "200"))
            assert got[("flp_http_requests_total", route)] >= ROUNDS
            assert all("fl" not in dict(labels).values() for _, labels in got)  # no ids as label values
