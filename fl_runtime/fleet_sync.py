"""The fleet process manager: applies the fleet stream (NodeRegistered / NodeRevoked) to the
SuperLink's node registry and records when a registered node comes online (NodeConnected).

Level-triggered: each pass compares the fleet's state (folded from its stream) with the
SuperLink's node list, so a restart of flp or of the SuperLink (or a lost SuperLink database)
is reconciled by the next pass. The stream is the source of truth: a node the SuperLink knows
but the fleet does not (registered by hand with `flwr supernode register`) is unregistered.
It acts only while the Flower runtime holds a Control API client (the runtime's lease)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from commands.fleet import PublicKey, parse_public_key
from commands.handlers import CommandContext, CommandHandler
from domain.fleet import FleetCommand, FleetState, RecordNodeConnected
from fl_runtime.control import NodeInfo
from persistence.ports import ArtifactStore

log = logging.getLogger(__name__)
ACTOR = "fleet-sync"
INTERVAL_S = 1.0


class NodeControl(Protocol):
    def list_nodes(self) -> list[NodeInfo]: ...

    def register_node(self, public_key_pem: bytes, name: str) -> str: ...

    def unregister_node(self, node_id: str) -> None: ...


@dataclass
class PassReport:
    registered: list[str] = field(default_factory=list)
    unregistered: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class FleetSync:
    def __init__(
        self,
        fleet: CommandHandler[FleetCommand, FleetState],
        artifacts: ArtifactStore,
        control: Callable[[], NodeControl | None],
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.fleet = fleet
        self.artifacts = artifacts
        self.control = control
        self.interval_s = interval_s
        self.passes = 0
        self.last: PassReport | None = None
        self._stopped = False

    async def stop(self) -> None:
        self._stopped = True  # before the runtime closes its Control API client

    async def run(self) -> None:
        while not self._stopped:
            control = self.control()
            if control is not None:
                try:
                    self.last = await self.reconcile(control)
                    self.passes += 1
                except Exception:  # the SuperLink may be restarting: the next pass tries again
                    log.warning("fleet reconciliation with the SuperLink failed", exc_info=True)
            await asyncio.sleep(self.interval_s)

    async def reconcile(self, control: NodeControl) -> PassReport:
        report = PassReport()
        _, state = await self.fleet.load("")
        on_link: dict[str, NodeInfo] = {}
        for listed in await asyncio.to_thread(control.list_nodes):
            if listed.status == "unregistered":
                continue
            try:
                on_link[parse_public_key(listed.public_key).fingerprint] = listed
            except ValueError:
                on_link[f"unreadable:{listed.node_id}"] = listed
        known = {node.fingerprint for node in state.nodes.values()}
        for fp, stray in on_link.items():
            if fp not in known:
                log.warning("SuperLink node %s is not in the fleet stream: unregistering it", stray.node_id)
                await asyncio.to_thread(control.unregister_node, stray.node_id)
                report.unregistered.append(stray.node_id)
        for node in state.nodes.values():
            info = on_link.get(node.fingerprint)
            if node.status == "revoked":
                if info is not None:
                    await asyncio.to_thread(control.unregister_node, info.node_id)
                    report.unregistered.append(node.name)
                    log.info("fleet: node %s revoked on the SuperLink (key %s)", node.name, node.fingerprint[:16])
                continue
            if info is None:
                try:
                    der = await self.artifacts.get(node.fingerprint)
                except KeyError:
                    report.errors.append(f"{node.name}: public key {node.fingerprint[:16]} is missing")
                    log.error("fleet: the public key of node %s is missing from the artifact store", node.name)
                    continue
                pem = PublicKey(node.fingerprint, der).pem
                node_id = await asyncio.to_thread(control.register_node, pem, node.name)
                report.registered.append(node.name)
                log.info("fleet: node %s registered on the SuperLink as %s", node.name, node_id)
            elif info.status == "online" and node.flower_node_id != info.node_id:
                command = RecordNodeConnected(fingerprint=node.fingerprint, flower_node_id=info.node_id)
                await self.fleet.execute("", command, CommandContext(actor=ACTOR))
                report.connected.append(node.name)
        return report

    def info(self) -> dict[str, Any]:
        last = self.last
        return {"passes": self.passes, "errors": last.errors if last else []}
