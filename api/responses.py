"""JSON answers built straight from the data the route already holds.

A route's `response_model` documents its answer in OpenAPI; returning a model object makes
FastAPI validate and serialize it again on every request. The hot routes (commands, the job
board, one job) instead return `Json` (orjson-encoded bytes) built from documents that are
already in shape: read models and stored envelopes. Schemathesis checks in the test suite that
these answers still conform to the documented schemas."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class EncodedJson(Response):
    """An answer that is already JSON bytes (a stored document, `ReadModelStore.get_json`)."""

    media_type = "application/json"
