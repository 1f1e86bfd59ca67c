"""Errors as RFC 9457 problem+json, each with a reason. Bad input is a 4xx, never a 500."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DomainError, UnknownAggregate
from persistence.encoding import UnstorableEvent
from persistence.ports import ConcurrencyError, IdempotencyKeyReused
from persistence.records import UndecodableEvent

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, "Not Found", exc.what)

    @app.exception_handler(UnknownAggregate)
    async def unknown(_: Request, exc: UnknownAggregate) -> JSONResponse:
        return problem(404, "Not Found", exc.message)

    @app.exception_handler(DomainError)
    async def rule_broken(_: Request, exc: DomainError) -> JSONResponse:
        return problem(409, "Rule Broken", exc.message, code=exc.code)

    @app.exception_handler(ConcurrencyError)
    async def conflict(_: Request, exc: ConcurrencyError) -> JSONResponse:
        return problem(409, "Concurrency Conflict", str(exc), current_version=exc.actual, expected_version=exc.expected)

    @app.exception_handler(IdempotencyKeyReused)
    async def key_reused(_: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        return problem(409, "Idempotency Key Reused", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(exc.errors())

    @app.exception_handler(ValidationError)
    async def invalid_inside(_: Request, exc: ValidationError) -> JSONResponse:
        return _invalid(exc.errors())  # a command built from a valid body broke its own rules

    @app.exception_handler(UnstorableEvent)
    async def unstorable(_: Request, exc: UnstorableEvent) -> JSONResponse:
        return problem(422, "Invalid Input", f"the store refused the events: {exc}")

    @app.exception_handler(UndecodableEvent)
    async def faulted(_: Request, exc: UndecodableEvent) -> JSONResponse:
        return problem(
            409,
            "Stream Faulted",
            f"{exc}; the stream is faulted (see GET /health and `flp audit verify`)",
            code="stream_faulted",
            stream_id=exc.stream_id,
            position=exc.position,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = problem(exc.status_code, _title(exc.status_code), str(exc.detail))
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return problem(500, "Internal Server Error", "an unexpected error occurred; it was logged")


def _invalid(raw: Sequence[Any]) -> JSONResponse:
    errors = [
        {
            "loc": [p if isinstance(p, int) else _printable(str(p)) for p in e.get("loc", ())],
            "msg": _printable(str(e.get("msg", "")).removeprefix("Value error, ")),
            "type": str(e.get("type", "")),
        }
        for e in raw
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return problem(422, "Invalid Input", f"{where}: {first['msg']}" if where else str(first["msg"]), errors=errors)


def _printable(text: str) -> str:
    """Text safe to put in a JSON answer: a lone surrogate (the very input refused) is escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
