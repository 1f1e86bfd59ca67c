"""A job's lineage: final model -> rounds -> client updates -> clients -> app code -> config,
every node resolvable to a stored artifact (sha256) or event (stream, version, position);
exportable as W3C PROV-JSON (https://www.w3.org/Submission/prov-json/).

Node kinds: `model` (the initial model, each round's model, the final model), `round` (one
aggregation), `client_update`, `client` (with the fleet's key fingerprint when the client is
registered with a `key_fingerprint` property), `app_code` (the Flower app directory's hash,
recorded in JobStarted), `config` (the job's configuration, JobCreated).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from domain import events as e
from domain.client import stream_id as client_stream
from domain.training_job import stream_id
from persistence.ports import EventStore
from persistence.records import RecordedEvent

PROV_PREFIX = {"flp": "urn:flp:", "sha256": "urn:sha256:"}
FINGERPRINT_KEYS = ("key_fingerprint", "public_key_fingerprint")


def _event_ref(recorded: RecordedEvent) -> dict[str, Any]:
    return {
        "event": {
            "stream_id": recorded.stream_id,
            "version": recorded.version,
            "position": recorded.position,
            "type": recorded.type,
        }
    }


class _Graph:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[dict[str, str]] = []

    def node(self, node_id: str, kind: str, label: str, refs: list[dict[str, Any]], **attrs: Any) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"id": node_id, "kind": kind, "label": label, "refs": refs, "attributes": attrs}
        return node_id

    def edge(self, source: str, target: str, rel: str) -> None:
        self.edges.append({"from": source, "to": target, "rel": rel})


def build_lineage(job_id: str, events: Sequence[RecordedEvent], fingerprints: dict[str, str]) -> dict[str, Any]:
    g = _Graph()
    config_id = app_id = previous_model = None
    round_nodes: dict[int, str] = {}
    last_model: str | None = None
    for recorded in events:
        event = recorded.to_event()
        match event:
            case e.JobCreated(config=config):
                config_id = g.node(
                    f"config:{job_id}", "config", f"configuration of job {job_id}", [_event_ref(recorded)],
                    strategy=config.strategy, rounds=config.rounds, seed=config.seed, model=config.model,
                )  # fmt: skip
            case e.JobStarted(provenance=prov) if prov is not None:
                app_id = g.node(
                    f"app:{prov.app_sha256}", "app_code", "Flower app directory", [_event_ref(recorded)],
                    sha256=prov.app_sha256, strategy=prov.strategy.flower_class,
                    **{f"version_{k}": v for k, v in sorted(prov.versions.items())},
                )  # fmt: skip
                previous_model = g.node(
                    f"model:{prov.initial_model_sha256}", "model", "initial model",
                    [{"artifact": prov.initial_model_sha256}, _event_ref(recorded)], sha256=prov.initial_model_sha256,
                )  # fmt: skip
            case e.ClientJoined(client_id=cid):
                attrs = {"key_fingerprint": fingerprints[cid]} if cid in fingerprints else {}
                g.node(f"client:{cid}", "client", cid, [_event_ref(recorded)], **attrs)
            case e.ClientUpdateReceived():
                rid = round_nodes.setdefault(event.round, f"round:{job_id}:{event.round}")
                refs = [_event_ref(recorded)]
                if event.update_sha256 is not None:
                    refs.insert(0, {"artifact": event.update_sha256})
                uid = g.node(
                    f"update:{job_id}:{event.round}:{event.client_id}", "client_update",
                    f"update of {event.client_id} in round {event.round}", refs,
                    num_examples=event.num_examples,
                    **{k: v for k in ("update_sha256", "weight") if (v := getattr(event, k)) is not None},
                )  # fmt: skip
                g.edge(uid, f"client:{event.client_id}", "attributed_to")
                g.edge(rid, uid, "used")
            case e.RoundCompleted():
                rid = round_nodes.setdefault(event.round, f"round:{job_id}:{event.round}")
                g.node(rid, "round", f"aggregation of round {event.round}", [_event_ref(recorded)], round=event.round)
                if previous_model is not None:
                    g.edge(rid, previous_model, "used")
                if app_id is not None:
                    g.edge(rid, app_id, "associated_with")
                if config_id is not None:
                    g.edge(rid, config_id, "used")
                if event.model_sha256 is not None:
                    mid = g.node(
                        f"model:{event.model_sha256}", "model", f"model after round {event.round}",
                        [{"artifact": event.model_sha256}, _event_ref(recorded)], sha256=event.model_sha256,
                    )  # fmt: skip
                    g.edge(mid, rid, "generated_by")
                    previous_model = last_model = mid
            case e.JobCompleted(model_sha256=sha):
                final_sha = sha or (last_model.removeprefix("model:") if last_model else None)
                if final_sha is not None:
                    fid = g.node(
                        f"final:{job_id}", "model", f"final model of job {job_id}",
                        [{"artifact": final_sha}, _event_ref(recorded)], sha256=final_sha,
                    )  # fmt: skip
                    if last_model is not None:
                        g.edge(fid, last_model, "derived_from")
    return {"job_id": job_id, "nodes": list(g.nodes.values()), "edges": g.edges}


async def job_lineage(store: EventStore, job_id: str) -> dict[str, Any] | None:
    events = await store.read_stream(stream_id(job_id))
    if not events:
        return None
    fingerprints: dict[str, str] = {}
    joined = {r.data.get("client_id") for r in events if r.type == "ClientJoined"}
    for cid in sorted(c for c in joined if isinstance(c, str)):
        for recorded in await store.read_stream(client_stream(cid)):
            if recorded.type == "ClientRegistered":
                props = recorded.data.get("properties") or {}
                for key in FINGERPRINT_KEYS:
                    if isinstance(props.get(key), str):
                        fingerprints[cid] = props[key]
    return build_lineage(job_id, events, fingerprints)


# --- W3C PROV-JSON -----------------------------------------------------------------------------


def _qid(node_id: str) -> str:
    return "flp:" + node_id.replace(":", "-")


def _literal(value: Any) -> Any:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"$": repr(value), "type": "xsd:double"}
    return str(value)


def to_prov(lineage: dict[str, Any]) -> dict[str, Any]:
    """The lineage as a PROV-JSON document: models, updates, app code and config are entities,
    rounds are activities, clients and the strategy are agents."""
    doc: dict[str, Any] = {
        "prefix": dict(PROV_PREFIX),
        "entity": {},
        "activity": {},
        "agent": {},
        "wasGeneratedBy": {},
        "used": {},
        "wasAttributedTo": {},
        "wasAssociatedWith": {},
        "wasDerivedFrom": {},
    }
    for node in lineage["nodes"]:
        attrs: dict[str, Any] = {"prov:label": node["label"], "flp:kind": node["kind"]}
        attrs.update({f"flp:{k}": _literal(v) for k, v in node["attributes"].items()})
        for i, ref in enumerate(node["refs"]):
            if "artifact" in ref:
                attrs["flp:artifact"] = "sha256:" + ref["artifact"]
            if "event" in ref:
                ev = ref["event"]
                attrs[f"flp:event{'' if i < 2 else i}"] = f"{ev['stream_id']}@{ev['version']}#{ev['position']}"
        section = {"round": "activity", "client": "agent"}.get(node["kind"], "entity")
        if section == "agent":
            attrs["prov:type"] = "prov:SoftwareAgent"
        doc[section][_qid(node["id"])] = attrs
    for i, edge in enumerate(lineage["edges"]):
        src, dst, rel = _qid(edge["from"]), _qid(edge["to"]), edge["rel"]
        rid = f"_:r{i}"
        if rel == "generated_by":
            doc["wasGeneratedBy"][rid] = {"prov:entity": src, "prov:activity": dst}
        elif rel == "used":
            doc["used"][rid] = {"prov:activity": src, "prov:entity": dst}
        elif rel == "attributed_to":
            doc["wasAttributedTo"][rid] = {"prov:entity": src, "prov:agent": dst}
        elif rel == "associated_with":  # the round ran the app's strategy: the app code is its plan
            agent = _qid(f"strategy:{lineage['job_id']}")
            doc["agent"].setdefault(agent, {"prov:type": "prov:SoftwareAgent", "prov:label": "aggregation strategy"})
            doc["wasAssociatedWith"][rid] = {"prov:activity": src, "prov:agent": agent, "prov:plan": dst}
        elif rel == "derived_from":
            doc["wasDerivedFrom"][rid] = {"prov:generatedEntity": src, "prov:usedEntity": dst}
    return {k: v for k, v in doc.items() if v}
