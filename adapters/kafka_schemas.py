"""Published schemas for integrators: one JSON Schema per event type and version, plus AsyncAPI 3.0.

Every message on the topic is a CloudEvent (structured JSON) whose `type` is
`flp.<EventType>.v<schema_version>`; `events/<type>.json` is the JSON Schema (draft 2020-12) of that
whole message: the CloudEvents envelope with flp's extension attributes and, under `data`, the
payload schema generated from the event's pydantic model. `asyncapi.json` describes the topic.

Versioning rules (how schemas change)
1. A published (type, schema_version) schema is frozen. Never edit an event class that has been
   used to write events; `tests/kafka/test_schemas.py` compares every export against the frozen
   copy in `tests/kafka/published_schemas/` and fails on an in-place change.
2. To change an event: keep the old class under a new Python name with the same `type` and its
   old `schema_version` (e.g. `class JobCreatedV1(Event): type = "JobCreated"`), make the current
   class `schema_version = N + 1`, and register an upcaster in `domain.upcasting.UPCASTERS` for
   (type, N) -> N + 1. Stored events are never rewritten; readers upcast on read.
3. The topic carries events as stored, so old versions keep appearing (replays, old streams):
   integrators must accept every version they subscribe to, or upcast with the same rules.
4. Adding a version means exporting again (`flp schema export DIR`) and committing the new file
   next to the old ones; old files stay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adapters.kafka_cloudevents import (
    CLOUDEVENTS_CONTENT_TYPE,
    DATA_CONTENT_TYPE,
    SPEC_VERSION,
    cloudevent_type,
)
from domain.events import EVENT_TYPES, Event
from domain.upcasting import UPCASTERS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_PREFIX = "urn:flp:schema:"
_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_CE_INT = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}  # CloudEvents Integer is 32-bit


def event_models() -> dict[tuple[str, int], type[Event]]:
    """Every event model by (type, schema_version): current classes and kept old versions."""
    models: dict[tuple[str, int], type[Event]] = {}
    stack: list[type[Event]] = list(Event.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__module__.startswith("domain."):
            continue  # test doubles and plugins are not part of the published contract
        key = (cls.type, cls.schema_version)
        if key in models and models[key] is not cls:
            raise ValueError(f"two event classes claim {key}: {models[key].__name__}, {cls.__name__}")
        models[key] = cls
    for name, cls in EVENT_TYPES.items():
        models[(name, cls.schema_version)] = cls
    return dict(sorted(models.items()))


def versioning_problems() -> list[str]:
    """Old schema versions must have an upcaster to the next one (rule 2 above)."""
    problems: list[str] = []
    models = event_models()
    for (type_name, version), _cls in models.items():
        current = EVENT_TYPES.get(type_name)
        if current is None:
            problems.append(f"{type_name} v{version} has no current class in EVENT_TYPES")
        elif version < current.schema_version and (type_name, version) not in UPCASTERS:
            problems.append(f"{type_name} v{version} is older than v{current.schema_version} but has no upcaster")
    return problems


def _data_schema(cls: type[Event], ref_prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload schema, its definitions) with refs pointing at `ref_prefix` + name."""
    schema = cls.model_json_schema(ref_template=ref_prefix + "{model}")
    defs = schema.pop("$defs", {})
    return schema, defs


def cloudevent_schema(cls: type[Event], data: dict[str, Any]) -> dict[str, Any]:
    """The message schema for one event type and version (without $schema/$id/$defs)."""
    ce_type = cloudevent_type(cls.type, cls.schema_version)
    return {
        "title": ce_type,
        "description": " ".join(
            [f"CloudEvents 1.0 structured JSON carrying {cls.type} (schema version {cls.schema_version})."]
            + ([doc] if (doc := (cls.__dict__.get("__doc__") or "").strip()) else [])
        ),
        "type": "object",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "data",
            "position",
            "streamversion",
            "schemaversion",
            "correlationid",
            "causationid",
        ],
        "properties": {
            "specversion": {"const": SPEC_VERSION},
            "id": {"type": "string", "minLength": 1, "description": "event id (UUID); dedupe key"},
            "source": {"type": "string", "minLength": 1, "format": "uri-reference"},
            "type": {"const": ce_type},
            "subject": {"type": "string", "minLength": 1, "description": "stream id = Kafka message key"},
            "time": {"type": "string", "format": "date-time", "description": "when the event was recorded"},
            "datacontenttype": {"const": DATA_CONTENT_TYPE},
            "position": {**_CE_INT, "description": "global, gap-free order across all streams"},
            "streamversion": {**_CE_INT, "description": "1-based version within the stream"},
            "schemaversion": {"const": cls.schema_version},
            "correlationid": {"type": "string", "minLength": 1},
            "causationid": {"type": "string", "minLength": 1},
            "actor": {"type": "string", "description": "who caused the event"},
            "prevhash": {**_HASH, "description": "hash of the previous event in the stream (zeros first)"},
            "hash": {**_HASH, "description": "sha256 chaining this event to prevhash"},
            "metadata": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "stored metadata as canonical JSON (the hash covers it)",
            },
            "data": data,
        },
        # further CloudEvents extension attributes may appear later; their names are lowercase
        "patternProperties": {"^[a-z0-9]{1,20}$": True},
        "additionalProperties": False,
    }


def event_json_schema(cls: type[Event]) -> dict[str, Any]:
    """Standalone JSON Schema (draft 2020-12) of one event type and version on the topic."""
    data, defs = _data_schema(cls, "#/$defs/")
    ce_type = cloudevent_type(cls.type, cls.schema_version)
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_ID_PREFIX + ce_type}
    schema.update(cloudevent_schema(cls, data))
    if defs:
        schema["$defs"] = defs
    return schema


def all_event_schemas() -> dict[str, dict[str, Any]]:
    """CloudEvents type -> its JSON Schema."""
    return {cloudevent_type(t, v): event_json_schema(cls) for (t, v), cls in event_models().items()}


def asyncapi_document(topic: str = "flp.events") -> dict[str, Any]:
    """AsyncAPI 3.0 description of the topic (flp sends; integrators receive)."""
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for (type_name, version), cls in event_models().items():
        ce_type = cloudevent_type(type_name, version)
        name = f"{type_name}.v{version}"
        data, defs = _data_schema(cls, f"#/components/schemas/{name}.")
        for def_name, def_schema in defs.items():
            schemas[f"{name}.{def_name}"] = def_schema
        schemas[name] = cloudevent_schema(cls, data)
        messages[name] = {
            "name": ce_type,
            "title": f"{type_name} v{version}",
            "summary": ((cls.__dict__.get("__doc__") or "").strip() or f"{type_name} v{version}").splitlines()[0],
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/KafkaHeaders"},
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": "stream id (job-<id> or client-<id>)"},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    schemas["KafkaHeaders"] = {
        "type": "object",
        "properties": {
            "content-type": {"const": CLOUDEVENTS_CONTENT_TYPE},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "W3C trace context of the command that caused the event",
            },
        },
        "required": ["content-type"],
    }
    refs = [{"$ref": f"#/channels/events/messages/{name}"} for name in messages]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "flp integrator event stream",
            "version": "1.0.0",
            "description": (
                "Every event flp records, relayed from the event store (the outbox) in order. "
                "Key = stream id: one stream's events keep their order within a partition. "
                "Delivery is at-least-once: dedupe by `id`, or skip a message whose `position` is "
                "not above the last one you processed for its key. Events are published as "
                "stored, in every schema version ever written; see each type's `.vN` suffix."
            ),
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "channels": {
            "events": {
                "address": topic,
                "description": "CloudEvents 1.0 structured JSON, one per stored event",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
                "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
            }
        },
        "operations": {
            "publishEvents": {
                "action": "send",
                "title": "flp relays every stored event",
                "channel": {"$ref": "#/channels/events"},
                "messages": refs,
            }
        },
        "components": {"messages": messages, "schemas": schemas},
    }


def _dump(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def export_schemas(directory: Path | str, topic: str = "flp.events") -> list[Path]:
    """Write `events/<ce type>.json` for every event type and version and `asyncapi.json`."""
    root = Path(directory)
    (root / "events").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for ce_type, schema in all_event_schemas().items():
        path = root / "events" / f"{ce_type}.json"
        _dump(path, schema)
        written.append(path)
    path = root / "asyncapi.json"
    _dump(path, asyncapi_document(topic))
    written.append(path)
    return written


def iter_schema_files(directory: Path | str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(CloudEvents type, schema) for each exported event schema file in `directory`."""
    for path in sorted((Path(directory) / "events").glob("*.json")):
        yield path.stem, json.loads(path.read_text())
