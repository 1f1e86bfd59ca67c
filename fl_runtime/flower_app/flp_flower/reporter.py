"""Sends each round's outcome to the flp platform over HTTP, idempotently, with retries.

The model bytes go first (`PUT /artifacts/{sha256}`), then the round (`POST /jobs/{id}/rounds`
with `Idempotency-Key: job-<id>-round-<n>`), so an event never references a missing artifact.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

log = logging.getLogger("flp_flower.reporter")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ReportRejected(RuntimeError):
    """The platform refused a report for good (4xx): e.g. the job was cancelled."""


class PlatformReporter:
    def __init__(self, base_url: str, job_id: str, token: str = "", retries: int = 5, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)
        self.job_id = job_id
        self.retries = max(retries, 1)

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        delay = 0.2
        for attempt in range(1, self.retries + 1):
            try:
                response = self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise
                log.warning("%s %s failed (%s); retrying", method, url, exc)
            else:
                if response.status_code < 400:
                    return response
                if response.status_code not in RETRYABLE_STATUS or attempt == self.retries:
                    raise ReportRejected(f"{method} {url} -> {response.status_code}: {response.text[:500]}")
                log.warning("%s %s -> %s; retrying", method, url, response.status_code)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def put_artifact(self, sha256: str, data: bytes) -> None:
        self._send(
            "PUT",
            f"/artifacts/{sha256}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def fail_job(self, reason: str, round_no: int | None = None, failures: list[dict[str, str]] | None = None) -> None:
        """End the job; a failed round's clients are recorded as ClientFailed first."""
        body: dict[str, Any] = {"reason": reason[:2000]}
        if round_no is not None:
            body.update(round=round_no, failures=failures or [])
        self._send(
            "POST",
            f"/jobs/{self.job_id}/fail",
            json=body,
            headers={"Idempotency-Key": f"job-{self.job_id}-fail"},
        )

    def post_round(self, round_no: int, body: dict[str, Any]) -> None:
        self._send(
            "POST",
            f"/jobs/{self.job_id}/rounds",
            json=body,
            headers={"Idempotency-Key": f"job-{self.job_id}-round-{round_no}"},
        )
