"""Published schemas: frozen per (type, version), versioning rules hold, AsyncAPI is consistent
and its payload schemas accept what the relay publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from adapters.kafka_cloudevents import to_cloudevent
from adapters.kafka_schemas import (
    all_event_schemas,
    asyncapi_document,
    event_models,
    export_schemas,
    versioning_problems,
)
from adapters.sqlite_event_store import SqliteEventStore
from domain.events import EVENT_TYPES
from tests.kafka.conftest import format_checker, script_job

PUBLISHED = Path(__file__).parent / "published_schemas" / "events"


def test_published_schemas_are_never_edited_in_place(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    current = {p.name: json.loads(p.read_text()) for p in (tmp_path / "events").glob("*.json")}
    frozen = {p.name: json.loads(p.read_text()) for p in PUBLISHED.glob("*.json")}
    changed = sorted(name for name in frozen.keys() & current.keys() if frozen[name] != current[name])
    assert not changed, (
        f"published schemas changed in place: {changed}. Add a new schema_version with an upcaster "
        "instead (see flp/schemas.py)"
    )
    assert frozen.keys() <= current.keys(), "an old schema version is no longer exported (keep the old class)"
    new = sorted(current.keys() - frozen.keys())
    assert not new, f"new schema versions {new}: `flp schema export tests/kafka/published_schemas` and commit them"


def test_every_event_type_has_a_schema_and_old_versions_have_upcasters() -> None:
    assert versioning_problems() == []
    types = {t for t, _ in event_models()}
    assert types == set(EVENT_TYPES)
    assert set(all_event_schemas()) == {f"flp.{t}.v{v}" for t, v in event_models()}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


async def test_asyncapi_document_is_consistent_and_validates_relay_messages(tmp_path: Path) -> None:
    doc = asyncapi_document("flp.events")
    assert doc["asyncapi"] == "3.0.0"
    for ref in _refs(doc):
        _resolve(doc, ref)  # every reference resolves inside the document
    messages = doc["components"]["messages"]
    assert set(doc["channels"]["events"]["messages"]) == set(messages)
    assert len(doc["operations"]["publishEvents"]["messages"]) == len(messages)

    store = await SqliteEventStore(tmp_path / "events.db").open()
    try:
        await script_job(store, "j1")
        stored = await store.read_all(0, 1000)
    finally:
        await store.close()
    registry: Registry[Any] = Registry().with_resource("urn:flp:asyncapi", DRAFT202012.create_resource(doc))
    by_type = {m["name"]: m for m in messages.values()}
    for event in stored:
        ce = to_cloudevent(event)
        payload_ref = by_type[ce["type"]]["payload"]["$ref"]
        validator = jsonschema.Draft202012Validator(
            {"$ref": "urn:flp:asyncapi" + payload_ref}, registry=registry, format_checker=format_checker()
        )
        validator.validate(ce)
        headers = {"content-type": "application/cloudevents+json", "traceparent": event.metadata.get("traceparent")}
        headers = {k: v for k, v in headers.items() if v is not None}
        jsonschema.validate(headers, doc["components"]["schemas"]["KafkaHeaders"])


def test_schema_rejects_a_wrong_payload() -> None:
    schema = all_event_schemas()["flp.JobStarted.v1"]
    good = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/flp",
        "type": "flp.JobStarted.v1",
        "subject": "job-1",
        "time": "2026-11-27T21:00:00.000000Z",
        "datacontenttype": "application/json",
        "position": 3,
        "streamversion": 2,
        "schemaversion": 1,
        "correlationid": "c",
        "causationid": "c",
        "data": {"job_id": "1", "run_id": "r"},
    }
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "data": {"job_id": "1"}},  # missing field
        {**good, "data": {"job_id": "1", "run_id": "r", "extra": 1}},  # unknown field
        {**good, "type": "flp.JobStarted.v2"},
        {**good, "Bad_Ext": 1},  # CloudEvents extension names are lowercase alphanumeric
        {**good, "time": "yesterday"},
    ):
        assert not jsonschema.Draft202012Validator(schema, format_checker=format_checker()).is_valid(bad)
