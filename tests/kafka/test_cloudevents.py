"""The CloudEvents mapping on its own: attribute names, headers, round trip, type parsing."""

from __future__ import annotations

import re

import orjson
import pytest

from adapters.kafka_cloudevents import (
    MessageMapper,
    from_cloudevent,
    message_headers,
    message_key,
    message_value,
    parse_cloudevent_type,
    to_cloudevent,
)
from persistence.chain import GENESIS_HASH
from persistence.records import RecordedEvent

CE_CONTEXT = {"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"}


def recorded(**metadata: object) -> RecordedEvent:
    meta: dict[str, object] = {
        "actor": "alice",
        "correlation_id": "corr",
        "causation_id": "cause",
        "recorded_at": "2026-11-27T21:00:00Z",
    }
    meta.update(metadata)
    return RecordedEvent(
        "e-1", "job-1", 2, 7, "JobStarted", 1, {"job_id": "1", "run_id": "r"}, meta, GENESIS_HASH, "a" * 64
    )


def test_attributes_and_extension_names() -> None:
    ce = to_cloudevent(recorded())
    for name in set(ce) - CE_CONTEXT:
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), name
    assert ce["type"] == "flp.JobStarted.v1" and ce["subject"] == "job-1" and ce["id"] == "e-1"
    assert (ce["position"], ce["streamversion"], ce["correlationid"], ce["causationid"]) == (7, 2, "corr", "cause")
    assert ce["time"] == "2026-11-27T21:00:00Z"


def test_round_trip_is_exact_and_headers_carry_trace() -> None:
    event = recorded(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", tenant="x")
    assert from_cloudevent(orjson.loads(message_value(event))) == event
    assert dict(message_headers(event)) == {
        "content-type": b"application/cloudevents+json",
        "traceparent": b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }
    assert [k for k, _ in message_headers(recorded())] == ["content-type"]


def test_mapper_gives_the_same_messages_and_bounds_its_header_cache() -> None:
    mapper = MessageMapper(source="/elsewhere", max_traceparents=2)
    traces = [f"00-{i:032x}-00f067aa0ba902b7-01" for i in range(1, 4)]
    for event in (recorded(), *(recorded(traceparent=t) for t in traces)):
        assert mapper.key(event) == message_key(event) == b"job-1"
        assert mapper.value(event) == message_value(event, "/elsewhere")
        assert mapper.headers(event) == message_headers(event)
        assert mapper.cached_traceparents <= 2
    # one command's events share a traceparent, hence one header list; another mapper has its own
    first, second = recorded(traceparent=traces[2]), recorded(traceparent=traces[2])
    assert mapper.headers(first) is mapper.headers(second)
    assert MessageMapper().headers(first) is not mapper.headers(first)
    assert message_headers(first) is not message_headers(second)  # the function never shares


def test_without_the_metadata_extension_the_attributes_rebuild_it() -> None:
    ce = to_cloudevent(recorded())
    del ce["metadata"]
    back = from_cloudevent(ce)
    assert back.metadata["actor"] == "alice" and back.metadata["correlation_id"] == "corr"
    assert back.recorded_at == "2026-11-27T21:00:00Z"


@pytest.mark.parametrize("bad", ["JobStarted", "flp.JobStarted", "flp.JobStarted.v0", "other.JobStarted.v1"])
def test_foreign_types_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_cloudevent_type(bad)
    assert parse_cloudevent_type("flp.RoundCompleted.v12") == ("RoundCompleted", 12)
