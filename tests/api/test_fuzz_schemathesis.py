"""API fuzzing with schemathesis over the app's OpenAPI schema, against a real server.

Every operation except the endless SSE streams gets generated valid and invalid requests with an
admin token; no response may be a 5xx or contradict the schema (body, status code, content type,
headers), and invalid requests must be refused. Bounded (examples per operation,
derandomized) so the run takes about a minute; FLP_FUZZ_EXAMPLES raises it for a deeper run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Err

from tests.auth.helpers import admin_headers
from tests.live_server import LiveServer

EXAMPLES = int(os.environ.get("FLP_FUZZ_EXAMPLES", "100"))
# positive_data_acceptance is left out: some rules cannot be said in a schema (min_clients <= num_clients,
# an artifact's body must hash to its name), so schema-valid requests are rightly refused with 422.
CHECKS: list[Any] = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
EXTRA_CHECKS: list[Any] = []
SKIP = ("/live/",)  # Server-Sent Events never end; covered by tests/api/test_live_sse.py


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("fuzz") / "flp") as live:
        yield live


def fuzz_operation(operation: Any, server: LiveServer) -> None:
    headers = admin_headers(server.settings)
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    )
    def run(case: Case[Any]) -> None:
        case.call_and_validate(
            base_url=server.url,
            headers=headers,
            checks=[*CHECKS, *EXTRA_CHECKS],
            timeout=30,
        )

    run()


def test_api_fuzz(server: LiveServer) -> None:
    """No 5xx and no response that violates the schema, on any operation (SSE streams excluded)."""
    # A body over the size limit is refused with 413 (documented on every operation with a body).
    rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": rejected}}})
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)
    failures: list[str] = []
    fuzzed = 0
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"the schema has an invalid operation: {result.err()}")
            continue
        operation = result.ok()
        if operation.path.startswith(SKIP):
            continue
        fuzzed += 1
        try:
            fuzz_operation(operation, server)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {exc}"[:2000])
    assert fuzzed >= 30
    assert not failures, "\n\n".join(failures)
