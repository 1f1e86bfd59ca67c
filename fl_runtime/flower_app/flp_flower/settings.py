"""Typed view of the run config (declared in the app's pyproject) and node config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flwr.app import Context


@dataclass(frozen=True)
class RunSettings:
    job_id: str
    platform_url: str
    platform_token: str
    strategy: str
    rounds: int
    num_clients: int
    min_clients: int
    partitioning: str
    dirichlet_alpha: float
    seed: int
    lr: float
    batch_size: int
    local_epochs: int
    proximal_mu: float
    server_lr: float
    reply_timeout: float
    report_retries: int
    fail_partitions: frozenset[int]
    stall_partitions: frozenset[int] = frozenset()
    stall_seconds: float = 30.0
    traceparent: str = ""  # the platform's flower.run.start span: reports continue the job's trace
    keep_client_updates: bool = True  # upload every client update as an artifact (else hashes only)

    @classmethod
    def from_context(cls, context: Context) -> RunSettings:
        return cls.from_run_config(context.run_config)

    @classmethod
    def from_run_config(cls, c: Mapping[str, Any]) -> RunSettings:
        fail = str(c.get("fail-partitions", ""))
        stall = str(c.get("stall-partitions", ""))
        return cls(
            job_id=str(c.get("job-id", "")),
            platform_url=str(c.get("platform-url", "")).rstrip("/"),
            platform_token=str(c.get("platform-token", "")),
            traceparent=str(c.get("traceparent", "")),
            strategy=str(c.get("strategy", "fedavg")),
            rounds=int(c.get("num-server-rounds", 5)),
            num_clients=int(c.get("num-clients", 3)),
            min_clients=int(c.get("min-clients", 3)),
            partitioning=str(c.get("partitioning", "iid")),
            dirichlet_alpha=float(c.get("dirichlet-alpha", 0.5)),
            seed=int(c.get("seed", 42)),
            lr=float(c.get("lr", 0.1)),
            batch_size=int(c.get("batch-size", 32)),
            local_epochs=int(c.get("local-epochs", 1)),
            proximal_mu=float(c.get("proximal-mu", 0.01)),
            server_lr=float(c.get("server-lr", 0.1)),
            reply_timeout=float(c.get("reply-timeout", 120.0)),
            report_retries=int(c.get("report-retries", 8)),
            fail_partitions=_partitions(fail),
            stall_partitions=_partitions(stall),
            stall_seconds=float(c.get("stall-seconds", 30.0)),
            keep_client_updates=bool(c.get("keep-client-updates", True)),
        )


def _partitions(text: str) -> frozenset[int]:
    """ "1,2" or "1 2" -> {1, 2} (fault-injection keys for tests and drills)."""
    return frozenset(int(p) for p in text.replace(",", " ").split() if p)


def partition_of(context: Context) -> tuple[int, int]:
    """(partition-id, num-partitions) from the node config."""
    nc = context.node_config
    return int(nc["partition-id"]), int(nc["num-partitions"])
