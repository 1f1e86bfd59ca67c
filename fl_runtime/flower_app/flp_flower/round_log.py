"""What happened in one round, collected from the strategy's hooks; becomes RecordRoundResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord
from flwr.common.constant import ErrorCode

ERROR_NAMES: dict[int, str] = {
    value: name for name, value in vars(ErrorCode).items() if name.isupper() and isinstance(value, int)
}
SILENT_CODE = "NO_REPLY"


def client_id(node_id: int) -> str:
    return f"node-{node_id}"


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"ERROR_{code}")


@dataclass
class ClientUpdate:
    """One client's reply as the strategy aggregated it."""

    num_examples: int
    metrics: dict[str, float]
    update_sha256: str | None = None
    update: bytes | None = None  # the artifact's bytes (uploaded before the round is reported)
    weight: float | None = None
    update_norm: float | None = None
    cosine_to_aggregate: float | None = None

    def to_result(self, client: str) -> dict[str, Any]:
        body: dict[str, Any] = {"client_id": client, "num_examples": self.num_examples, "metrics": self.metrics}
        for key in ("update_sha256", "weight", "update_norm", "cosine_to_aggregate"):
            if (value := getattr(self, key)) is not None:
                body[key] = value
        return body


@dataclass
class RoundLog:
    round: int
    started: float
    sampled: list[int] = field(default_factory=list)
    # in the strategy's aggregation order (partition order): replay aggregates in this order
    results: dict[int, ClientUpdate] = field(default_factory=dict)
    start: ArrayRecord | None = None  # the global model the round started from
    state_sha256: str | None = None  # the strategy's state after the round (FedAdam's moments)
    state: bytes | None = None
    failures: dict[int, tuple[str, str]] = field(default_factory=dict)
    train_metrics: dict[str, float] = field(default_factory=dict)
    evaluate_metrics: dict[str, float] = field(default_factory=dict)
    central_metrics: dict[str, float] = field(default_factory=dict)

    def mark_silent(self, replied: set[int], timeout_s: float) -> None:
        """Sampled nodes that neither replied nor errored: silent until the reply timeout."""
        for node in self.sampled:
            if node not in replied and node not in self.failures:
                self.failures[node] = (SILENT_CODE, f"no reply within {timeout_s:g}s")

    def failure_summary(self) -> str:
        return "; ".join(f"{client_id(n)}: {code}: {reason}" for n, (code, reason) in sorted(self.failures.items()))

    def failure_records(self) -> list[dict[str, str]]:
        return [
            {"client_id": client_id(n), "code": code, "reason": reason[:2000]}
            for n, (code, reason) in sorted(self.failures.items())
        ]

    def to_command(self, duration_s: float, model_sha256: str | None) -> dict[str, Any]:
        """The RecordRoundResult command body."""
        return {
            "round": self.round,
            "sampled": len(self.sampled),
            "results": [update.to_result(client_id(n)) for n, update in self.results.items()],
            "failures": self.failure_records(),
            "train_metrics": self.train_metrics,
            "evaluate_metrics": self.evaluate_metrics,
            "central_metrics": self.central_metrics,
            "duration_s": round(max(duration_s, 0.0), 6),
            "model_sha256": model_sha256,
        } | ({"strategy_state_sha256": self.state_sha256} if self.state_sha256 else {})
