"""Sends each round's outcome to the flp platform over HTTP, idempotently, with retries.

The model bytes go first (`PUT /artifacts/{sha256}`), then the round (`POST /jobs/{id}/rounds`
with `Idempotency-Key: job-<id>-round-<n>`), so an event never references a missing artifact.
Transport errors and transient statuses (`RETRYABLE_STATUS`) are retried with exponential
backoff (tenacity): `retries` attempts in all (the run config's `report-retries`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger("flp_flower.reporter")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ReportRejected(RuntimeError):
    """The platform refused a report for good (4xx): e.g. the job was cancelled."""


class _TransientStatus(ReportRejected):
    """A retryable status; still a rejection when it is the last attempt's answer."""


def _log_retry(state: RetryCallState) -> None:
    method, url = state.args[:2]
    exc = state.outcome.exception() if state.outcome is not None else None
    log.warning("%s %s failed (attempt %s: %s); retrying", method, url, state.attempt_number, exc)


class PlatformReporter:
    def __init__(
        self,
        base_url: str,
        job_id: str,
        token: str = "",
        retries: int = 5,
        timeout_s: float = 10.0,
        *,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        traceparent: str = "",
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if traceparent:  # each report continues the job's trace (the platform's flower.run.start span)
            headers["traceparent"] = traceparent
        self._client = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)
        self.job_id = job_id
        self.retries = max(retries, 1)  # attempts in all, the first one included
        self._retrying = Retrying(
            stop=stop_after_attempt(self.retries),
            wait=wait_exponential(multiplier=backoff_s, max=max_backoff_s),  # 0.2, 0.4, 0.8 ... 5 s
            retry=retry_if_exception_type((httpx.TransportError, _TransientStatus)),
            before_sleep=_log_retry,
            sleep=sleep,
            reraise=True,  # the last attempt's own error: a TransportError or a ReportRejected
        )

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._retrying(self._attempt, method, url, **kwargs)

    def _attempt(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = self._client.request(method, url, **kwargs)
        if response.status_code < 400:
            return response
        rejected = _TransientStatus if response.status_code in RETRYABLE_STATUS else ReportRejected
        raise rejected(f"{method} {url} -> {response.status_code}: {response.text[:500]}")

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

    def round_started(self, round_no: int, client_ids: list[str]) -> None:
        self._send(
            "POST",
            f"/jobs/{self.job_id}/rounds/started",
            json={"round": round_no, "client_ids": client_ids},
            headers={"Idempotency-Key": f"job-{self.job_id}-round-{round_no}-started"},
        )

    def post_round(self, round_no: int, body: dict[str, Any]) -> None:
        self._send(
            "POST",
            f"/jobs/{self.job_id}/rounds",
            json=body,
            headers={"Idempotency-Key": f"job-{self.job_id}-round-{round_no}"},
        )
