"""client_fleet: every client (device) seen: registration, jobs joined, updates and failures.

SuperNodes of the fleet stream (NodeRegistered / NodeConnected / NodeRevoked) are documents keyed
by the node's name, with its key fingerprint (never the key), status registered / connected /
revoked, and the Flower node id it connected with. The runtime reports clients as
`node-<flower node id>`: NodeConnected also marks that document with the node's name, and the
node's own document collects the jobs and last sighting reported for that id from then on."""

from __future__ import annotations

from domain import events as e
from persistence.records import RecordedEvent
from projections.ports import Doc

_CLIENT = (e.ClientRegistered, e.ClientLeft, e.ClientJoined, e.ClientUpdateReceived, e.ClientFailed)
_NODE = (e.NodeRegistered, e.NodeRevoked, e.NodeConnected)


def flower_client_id(flower_node_id: str) -> str:
    return f"node-{flower_node_id}"


def _new(client_id: str) -> Doc:
    return {
        "client_id": client_id,
        "name": None,
        "properties": {},
        "status": "unregistered",
        "jobs": [],
        "updates": 0,
        "failures": 0,
        "examples": 0,
        "last_failure": None,
    }


class ClientFleet:
    name = "client_fleet"
    fresh_on: tuple[type[e.Event], ...] = ()

    def keys(self, event: e.Event) -> list[str]:
        if isinstance(event, _CLIENT):
            return [event.client_id]
        if isinstance(event, e.NodeConnected):
            return [event.name, flower_client_id(event.flower_node_id)]
        if isinstance(event, _NODE):
            return [event.name]
        return []

    def apply(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc | None:
        if isinstance(event, _NODE):
            return self._node(doc, event, recorded)
        if not isinstance(event, _CLIENT):
            return doc
        doc = doc or _new(event.client_id)
        match event:
            case e.ClientRegistered(name=name, properties=properties):
                doc.update(name=name, properties=properties, status="active", registered_at=recorded.recorded_at)
            case e.ClientLeft(reason=reason):
                doc.update(status="left", left_reason=reason)
            case e.ClientJoined(job_id=job_id):
                if job_id not in doc["jobs"]:
                    doc["jobs"].append(job_id)
            case e.ClientUpdateReceived(num_examples=n):
                doc.update(updates=doc["updates"] + 1, examples=doc["examples"] + n)
            case e.ClientFailed(job_id=job_id, round=rnd, code=code, reason=reason):
                doc.update(
                    failures=doc["failures"] + 1,
                    last_failure={"job_id": job_id, "round": rnd, "code": code, "reason": reason},
                )
        doc.update(last_seen_at=recorded.recorded_at, position=recorded.position)
        return doc

    def _node(self, doc: Doc | None, event: e.Event, recorded: RecordedEvent) -> Doc:
        if isinstance(event, e.NodeConnected) and (doc is None or doc.get("kind") != "supernode"):
            # the runtime's `node-<id>` client document: say which fleet node it is
            doc = doc or _new(flower_client_id(event.flower_node_id))
            doc.update(fleet_node=event.name, last_seen_at=recorded.recorded_at, position=recorded.position)
            return doc
        doc = doc or _new(getattr(event, "name", ""))
        match event:
            case e.NodeRegistered(name=name, fingerprint=fp, actor=actor, reason=reason):
                doc.update(
                    name=name,
                    kind="supernode",
                    fingerprint=fp,
                    status="registered",
                    registered_at=recorded.recorded_at,
                    registered_by=actor,
                    registered_reason=reason,
                    flower_node_id=None,
                    revoked_at=None,
                    revoked_by=None,
                    revoked_reason=None,
                )
            case e.NodeConnected(flower_node_id=node_id):
                doc.update(status="connected", flower_node_id=node_id)
            case e.NodeRevoked(actor=actor, reason=reason):
                doc.update(status="revoked", revoked_at=recorded.recorded_at, revoked_by=actor, revoked_reason=reason)
        doc.update(last_seen_at=recorded.recorded_at, position=recorded.position)
        return doc
