"""Flower's Control API (SuperLink), used in-process: submit, list and stop runs.

It speaks the same protobuf-over-HTTP API as `flwr run` / `flwr ls` / `flwr stop`, without a CLI
process (about 1.2 s each) per call. Calls are blocking; the supervisor runs them in a thread.

Why Flower internals, and why only here: flwr 1.42 has no public, supported Python client for
the Control API. Its documented Python API is the app side (`flwr.app`, `flwr.serverapp`,
`flwr.clientapp`, `flwr.simulation`); runs are submitted, listed and stopped only through the
`flwr` CLI, and a CLI process per call (about 1.2 s) is too slow for a supervisor that polls the
run list every 0.5 s. So this module uses what the CLI itself uses (`ControlHttpClient`, the
`control_pb2` requests, FAB building, config serde). flwr is pinned (`flwr==1.42.0`) because these
are not a stable API; the real-SuperLink tests in tests/fl_runtime cover every call. This is the
only module of fl_runtime that imports Flower's control internals: the rest of the runtime speaks
`FlowerControl`, `RunInfo` and `Simulation` (plain data).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from flwr.cli.build import build_fab_from_disk
from flwr.cli.config_utils import load_and_validate
from flwr.common.constant import FAB_CONFIG_FILE
from flwr.common.serde import fab_to_proto, user_config_from_proto, user_config_to_proto
from flwr.proto.control_pb2 import (
    ListNodesRequest,
    ListRunsRequest,
    RegisterNodeRequest,
    StartRunRequest,
    StopRunRequest,
    UnregisterNodeRequest,
)
from flwr.proto.federation_config_pb2 import SimulationConfig
from flwr.supercore.control.control_http_client import ControlHttpClient
from flwr.supercore.fab import Fab

from fl_runtime.app_dir import APP_DIR

Scalar = bool | int | float | str


@dataclass(frozen=True)
class Simulation:
    """Per-run settings of the simulation engine (the simulated SuperNodes and Ray)."""

    num_supernodes: int
    ray_num_cpus: int
    cpus_per_client: int = 1
    gpus_per_client: float = 0.0
    ray_num_gpus: int = 0
    ray_logging_level: str = "ERROR"
    ray_log_to_driver: bool = False
    verbose: bool = False

    def to_proto(self) -> SimulationConfig:
        return SimulationConfig(
            num_supernodes=self.num_supernodes,
            client_resources_num_cpus=self.cpus_per_client,
            client_resources_num_gpus=self.gpus_per_client,
            backend="ray",
            init_args_num_cpus=self.ray_num_cpus,
            init_args_num_gpus=self.ray_num_gpus,
            init_args_logging_level=self.ray_logging_level,
            init_args_log_to_driver=self.ray_log_to_driver,
            verbose=self.verbose,
        )


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    status: str  # "pending" | "starting" | "running" | "finished:completed|stopped|failed"
    details: str
    run_config: dict[str, Any]

    @property
    def job_id(self) -> str:
        return str(self.run_config.get("job-id", ""))

    @property
    def finished(self) -> bool:
        return self.status.startswith("finished")


@dataclass(frozen=True)
class NodeInfo:
    """A SuperNode the SuperLink knows: `public_key` is PEM SubjectPublicKeyInfo (never logged)."""

    node_id: str
    status: str  # "registered" | "online" | "offline" | "unregistered"
    public_key: bytes
    name: str
    heartbeat_interval: float = 0.0  # what the node last told the SuperLink (it stays online for 2)


class RunControl(Protocol):
    """What the supervisor needs of a SuperLink: submit, list and stop runs (blocking calls)."""

    def start_run(self, run_config: dict[str, Scalar], simulation: Simulation | None = None) -> str: ...

    def list_runs(self) -> dict[str, RunInfo]: ...

    def stop_run(self, run_id: str) -> None: ...


class FlowerControl:
    """A Control API client for one SuperLink, submitting flp's Flower app."""

    def __init__(
        self, address: str, app_dir: Path = APP_DIR, timeout_s: float = 30.0, root_certificates: Path | None = None
    ) -> None:
        self.address = address
        self.app_dir = app_dir
        self._client = ControlHttpClient.from_server_address(
            server_address=address,
            insecure=root_certificates is None,
            root_certificates=root_certificates.read_bytes() if root_certificates is not None else None,
            interceptors=[],
        )
        self._timeout_s = timeout_s

    @cached_property
    def _fab(self) -> Fab:
        load_and_validate(self.app_dir / FAB_CONFIG_FILE)  # raises on an invalid app
        fab_bytes = build_fab_from_disk(self.app_dir)
        return Fab(hashlib.sha256(fab_bytes).hexdigest(), fab_bytes, {})

    def start_run(self, run_config: dict[str, Scalar], simulation: Simulation | None = None) -> str:
        request = StartRunRequest(
            fab=fab_to_proto(self._fab),
            override_config=user_config_to_proto(dict(run_config)),
            federation="",
            override_federation_config=simulation.to_proto() if simulation is not None else None,
            app_spec="",
        )
        response = self._client.StartRun(request)
        if not response.HasField("run_id"):
            raise RuntimeError(f"SuperLink {self.address} did not start the run")
        return str(response.run_id)

    def list_runs(self) -> dict[str, RunInfo]:
        response = self._client.ListRuns(ListRunsRequest())
        runs: dict[str, RunInfo] = {}
        for run_id, run in response.run_dict.items():
            status = run.status.status
            if run.status.sub_status:
                status = f"{status}:{run.status.sub_status}"
            runs[str(run_id)] = RunInfo(
                str(run_id), status, run.status.details, dict(user_config_from_proto(run.override_config))
            )
        return runs

    def stop_run(self, run_id: str) -> None:
        self._client.StopRun(StopRunRequest(run_id=int(run_id)))

    # --- SuperNodes (with --enable-supernode-auth, only registered public keys may connect) ---

    def list_nodes(self) -> list[NodeInfo]:
        response = self._client.ListNodes(ListNodesRequest())
        return [
            NodeInfo(str(n.node_id), n.status, bytes(n.public_key), n.name, n.heartbeat_interval)
            for n in response.nodes_info
        ]

    def register_node(self, public_key_pem: bytes, name: str) -> str:
        """Register a SuperNode's public key (what `flwr supernode register` does); its node id."""
        response = self._client.RegisterNode(RegisterNodeRequest(public_key=public_key_pem, name=name))
        if not response.node_id:
            raise RuntimeError(f"SuperLink {self.address} did not register node {name}")
        return str(response.node_id)

    def unregister_node(self, node_id: str) -> None:
        self._client.UnregisterNode(UnregisterNodeRequest(node_id=int(node_id)))

    def close(self) -> None:
        self._client.close()
