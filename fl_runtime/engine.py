"""Flower engines by `FLP_FLOWER_MODE`: the SuperLink (and SuperNodes) the platform runs jobs on.

- `simulation`: the platform owns a local SuperLink in simulation mode; each run simulates
  `num_clients` SuperNodes (Ray), `partition-id`/`num-partitions` set by Flower.
- `deployment`: the platform owns a SuperLink plus N SuperNodes, real processes on loopback,
  each with node config `partition-id=i num-partitions=N`.
- `remote`: an existing SuperLink at `FLP_FLOWER_SUPERLINK` (real devices); nothing is started.

Owned processes get an isolated FLWR_HOME under the data dir, free loopback ports (never 8000),
no runtime dependency installation, no update check or telemetry, and are stopped with the
platform (see `fl_runtime.processes`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import psutil

from config.ports import free_port
from fl_runtime.control import Simulation
from fl_runtime.pki import pki_paths
from fl_runtime.processes import ManagedProcess, owned_pids, owned_processes
from fl_runtime.zygote import ForkedProcess, ZygoteProcess
from telemetry import metrics

log = logging.getLogger(__name__)
EngineMode = Literal["simulation", "deployment", "remote"]
STARTUP_TIMEOUT_S = 60.0
UNHEALTHY_PROBES = 3
OWNED_NODE_HEARTBEAT_S = 15  # loopback SuperNodes: a killed one goes offline within ~30 s, not ~60 s


@dataclass
class EngineConfig:
    mode: EngineMode
    data_dir: Path
    supernodes: int = 3
    remote_superlink: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None  # the SuperLink's (Fleet, Control, Runtime APIs); default a free one
    secure: bool = False  # TLS (data_dir/pki, `flp pki init`) + SuperNode authentication
    ca_file: Path | None = None  # remote mode: the CA of a secure SuperLink

    def __post_init__(self) -> None:
        # Absolute: the Flower processes run in the engine's own directory (a forked one changes
        # into it), so a relative data dir (`make demo`'s `.flp`) would name other paths there.
        self.data_dir = self.data_dir.absolute()
        self.ca_file = None if self.ca_file is None else self.ca_file.absolute()


def flower_env(flwr_home: Path) -> dict[str, str]:
    """Environment for every Flower process: isolated home, venv tools first on PATH, quiet."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update(
        {
            "PATH": os.pathsep.join([bin_dir, env.get("PATH", "")]),
            "FLWR_HOME": str(flwr_home),
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_TELEMETRY_ENABLED": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
            # the SuperLink's SuperExec looks for a run's ServerApp to start every second by default
            "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.25",
            # a message is ~12 objects (record, arrays, chunks), fetched 2 at a time by default:
            # one request round trip per pair; all at once costs the same work in one round trip
            "FLWR_PRIVATE_MAX_CONCURRENT_OBJ_PULLS": "16",
            "FLWR_PRIVATE_MAX_CONCURRENT_OBJ_PUSHES": "16",
        }
    )
    return env


CLI_CONNECTION = "flp"


def write_cli_config(flwr_home: Path, address: str, ca_file: Path | None = None) -> None:
    """Make `FLWR_HOME=<data_dir>/flower/home flwr ls flp` (or run/log/stop) reach our SuperLink."""
    tls = f'root-certificates = "{ca_file}"\n' if ca_file is not None else "insecure = true\n"
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "{CLI_CONNECTION}"\n\n[superlink.{CLI_CONNECTION}]\naddress = "{address}"\n{tls}'
    )


def _kill_owned(owner: str, timeout_s: float) -> int:
    """SIGKILL every live process carrying `owner`'s marker and wait for them; how many there were."""
    leftovers = owned_processes(owner)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(leftovers, timeout=timeout_s)
    return len(leftovers)


def _healthy(url: str, verify: str | bool = True) -> bool:
    try:
        return httpx.get(url, timeout=1.0, verify=verify).is_success
    except httpx.HTTPError:
        return False


@dataclass
class FlowerEngine:
    """Starts/stops the Flower processes of one mode; tells where the Control API is."""

    config: EngineConfig
    processes: list[ManagedProcess] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)  # markers of every process ever started
    lost_runs: set[str] = field(default_factory=set)  # unfinished runs inherited from a previous start
    control_address: str = ""
    zygote: ZygoteProcess | None = None  # deployment: the Flower processes fork from it
    _health_url: str = ""
    _health_verify: str | bool = True
    _failed_probes: int = 0
    _wake_tag: str = ""

    @property
    def mode(self) -> EngineMode:
        return self.config.mode

    @property
    def root(self) -> Path:
        return self.config.data_dir / "flower"

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate clients of the SuperLink verify it with (None: no TLS)."""
        if self.mode == "remote":
            return self.config.ca_file
        return pki_paths(self.config.data_dir).ca_cert if self.config.secure else None

    def _security_args(self) -> list[str]:
        """TLS + SuperNode authentication, or `--insecure` (loopback only, and said so)."""
        if not self.config.secure:
            log.warning(
                "Flower SuperLink on %s runs WITHOUT TLS and SuperNode authentication (loopback only; "
                "set FLP_FLOWER_HOST / FLP_FLOWER_SECURE and run `flp pki init` for devices)",
                self.config.host,
            )
            return ["--insecure"]
        if self.mode == "deployment" and self.config.supernodes:
            raise ValueError("a secure SuperLink takes only registered SuperNodes: set FLP_FLOWER_SUPERNODES=0")
        pki = pki_paths(self.config.data_dir)
        if not pki.complete():
            raise ValueError(f"a secure SuperLink needs a certificate: run `flp pki init` ({pki.root} is incomplete)")
        log.info("Flower SuperLink on %s: TLS (%s) and SuperNode authentication", self.config.host, pki.server_cert)
        return [
            "--ssl-certfile",
            str(pki.server_cert),
            "--ssl-keyfile",
            str(pki.server_key),
            "--ssl-ca-certfile",
            str(pki.ca_cert),
            "--enable-supernode-auth",
        ]

    def start(self) -> None:
        """Blocking: start and health-check the owned processes (nothing for `remote`)."""
        if self.mode == "remote":
            if not self.config.remote_superlink:
                raise ValueError("FLP_FLOWER_MODE=remote needs FLP_FLOWER_SUPERLINK=host:port")
            self.control_address = self.config.remote_superlink
            return
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        self._stop_leftovers()
        env = flower_env(home)
        host = self.config.host
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 - how we reach it ourselves
        port = self.config.port or free_port(local)
        argv = [
            sys.executable,
            "-m",
            "fl_runtime.fast_link",  # Flower's own SuperLink, its middlewares scoped to their API
            *self._security_args(),
            "--isolation",
            # deployment: the ServerApps are started warm by our own launcher (fast_serverapp)
            "process" if self.mode == "deployment" else "subprocess",
            "--host",
            host,
            "--port",
            str(port),
            "--database",
            ":flwr-in-memory:" if self.mode == "deployment" else str(self.root / f"superlink-{self.mode}.db"),
            "--disable-runtime-dependency-installation",
        ]
        if self.mode == "simulation":
            argv.append("--simulation")
        self._wake_tag = uuid.uuid4().hex[:12]  # wake-up names unique per start (several platforms per host)
        if self.mode == "deployment" and self.config.supernodes:
            argv += ["--wake-nodes-as", self._node_wake_prefix]  # ours: fast_link strips it
        if self.mode == "deployment":  # started first: its imports are the longest part of a cold start
            self.zygote = ZygoteProcess("zygote", env, self.root / "logs" / "zygote.log", cwd=self.root)
            self.zygote.start()
        try:
            superlink = self._own("superlink", argv, env)
        finally:  # listed after the SuperLink: health-checked before the processes it forks
            if self.zygote is not None:
                self.processes.append(self.zygote)
                self.owners.append(self.zygote.owner)
        self._remember_owners()
        ca = self.ca_file
        self._health_url = f"{'https' if ca else 'http'}://{local}:{port}/health"
        self._health_verify = str(ca) if ca else True
        try:
            superlink.wait_healthy(lambda: _healthy(self._health_url, self._health_verify), STARTUP_TIMEOUT_S)
            self.control_address = f"{local}:{port}"
            write_cli_config(home, self.control_address, ca)
            if self.mode == "deployment":
                self._start_serverapp_launcher(env, f"{local}:{port}", ca)
                self._start_supernodes(env, local, port)
        except BaseException:
            self.stop()
            raise

    def _own(self, name: str, argv: list[str], env: dict[str, str], forked: bool = False) -> ManagedProcess:
        """Start `argv` as an owned, health-checked process logging to logs/<name>.log; `forked`:
        from the zygote (a `python -m` command of ours), not as a new interpreter."""
        log_file = self.root / "logs" / f"{name}.log"
        proc: ManagedProcess
        if forked and self.zygote is not None:
            proc = ForkedProcess(name, argv, env, log_file, self.root, self.zygote)
        else:
            proc = ManagedProcess(name, argv, env, log_file, cwd=self.root)
        self.processes.append(proc)
        self.owners.append(proc.owner)
        proc.start()
        return proc

    def _start_serverapp_launcher(self, env: dict[str, str], superlink: str, ca: Path | None) -> None:
        """The SuperLink's SuperExec for ServerApps (`fl_runtime.fast_serverapp`): each run's
        `flwr-serverapp` forked from a process that imported flwr, torch and scikit-learn once."""
        argv = [sys.executable, "-m", "fl_runtime.fast_serverapp", "--runtime-api-address", superlink]
        if ca is not None:
            argv += ["--root-certificates", str(ca)]
        self._own("serverapps", argv, env, forked=True)

    def _start_supernodes(self, env: dict[str, str], host: str, superlink_port: int) -> None:
        """N SuperNodes, each with its ClientApp executor (`fl_runtime.fast_node`): Flower's own
        SuperNode with `--isolation process`, polling promptly, beside one long-lived ClientApp process."""
        n = self.config.supernodes
        for i in range(n):
            port = free_port(host)
            node_argv = [
                sys.executable,
                "-m",
                "fl_runtime.fast_node",
                "supernode",
                "--wake",
                self._wake_name(i),
                "--woken-as",
                self._node_wake_prefix,
                "--heartbeat-interval",
                str(OWNED_NODE_HEARTBEAT_S),
                "--insecure",
                "--superlink",
                f"{host}:{superlink_port}",
                "--node-config",
                f"partition-id={i} num-partitions={n}",
                "--isolation",
                "process",
                "--host",
                host,
                "--port",
                str(port),
            ]
            executor_argv = [
                sys.executable,
                "-m",
                "fl_runtime.fast_node",
                "executor",
                "--runtime-api-address",
                f"{host}:{port}",
                "--wake",
                self._wake_name(i),
            ]
            for name, argv in ((f"supernode-{i}", node_argv), (f"clientapps-{i}", executor_argv)):
                self._own(name, argv, env, forked=True)
        self._remember_owners()
        for proc in self.processes:
            proc.wait_healthy(lambda: True, 1.0)  # started and still alive

    def _wake_name(self, i: int) -> str:
        """What SuperNode i wakes its executor by."""
        return f"flp-{self._wake_tag}-{i}"

    @property
    def _node_wake_prefix(self) -> str:
        """What the SuperLink wakes a SuperNode by, + its node id (`fast_node.node_wake_address`)."""
        return f"flp-{self._wake_tag}-node-"

    def ensure_running(self) -> bool:
        """Health check: restart any owned process that died (same ports). True when the
        SuperLink itself had to be restarted (its in-flight runs are lost)."""
        superlink_restarted = False
        for proc in self.processes:
            if proc.running() and proc.name == "superlink":
                # a busy SuperLink may miss one probe: restart only after 3 failed probes in a row
                healthy = _healthy(self._health_url, self._health_verify)
                self._failed_probes = 0 if healthy else self._failed_probes + 1
                if self._failed_probes < UNHEALTHY_PROBES:
                    continue
            elif proc.running():
                continue
            self._failed_probes = 0
            log.warning("Flower %s is down (see %s); restarting it", proc.name, proc.log_file)
            proc.restart()
            metrics.FLOWER_RESTARTS.labels(proc.name.split("-")[0]).inc()
            if proc.name == "superlink":
                superlink_restarted = True
                proc.wait_healthy(lambda: _healthy(self._health_url, self._health_verify), STARTUP_TIMEOUT_S)
        return superlink_restarted

    def simulation_config(self, num_clients: int) -> Simulation | None:
        """Per-run federation settings: the simulated SuperNodes (simulation mode only)."""
        if self.mode != "simulation":
            return None
        return Simulation(num_supernodes=num_clients, ray_num_cpus=os.cpu_count() or 1)

    def owned_pids(self) -> list[int]:
        """Every live process the engine started, with all descendants (incl. Ray's), also after stop()."""
        return [pid for owner in self.owners for pid in owned_pids(owner)]

    def reap_orphans(self) -> list[int]:
        """Kill leftovers of finished runs (Ray agents orphaned when a simulation exits)."""
        return [pid for proc in self.processes for pid in proc.reap_orphans()]

    def stop(self) -> None:
        started = bool(self.processes)
        for proc in reversed(self.processes):
            proc.stop()
        for owner in self.owners:  # e.g. a child the zygote forked but whose pid never reached us
            _kill_owned(owner, timeout_s=5)
        self.processes.clear()
        self.zygote = None
        self.control_address = ""  # start() may run again (the runtime lease came back)
        if started:  # (a replica that never ran the engine must not touch the owner's list)
            self._forget_owners()

    @property
    def _owners_file(self) -> Path:
        return self.root / "owners.json"

    def _forget_owners(self) -> None:
        """Remove the owners file only while it lists this engine's processes: a replica that lost
        the runtime lease late stops its engine after another replica's has started and written
        the file, and removing that one would leave the new owner's processes unfindable (killed
        outright, they would outlive it)."""
        try:
            listed = json.loads(self._owners_file.read_text())
        except (OSError, ValueError):
            return
        if isinstance(listed, list) and set(map(str, listed)) <= set(self.owners):
            with contextlib.suppress(OSError):
                self._owners_file.unlink()

    def _remember_owners(self) -> None:
        self._owners_file.write_text(json.dumps([p.owner for p in self.processes]))

    def _stop_leftovers(self) -> None:
        """Kill the processes a previous owner of this data dir left running: an flp process
        killed outright (SIGKILL, OOM) leaves its SuperLink and SuperNodes behind, still holding
        the SuperLink's database. Only the holder of the runtime lease starts an engine, so any
        process listed there is stale."""
        try:
            owners = json.loads(self._owners_file.read_text())
        except (OSError, ValueError):
            return
        for owner in owners if isinstance(owners, list) else []:
            if killed := _kill_owned(str(owner), timeout_s=10):
                log.warning("stopped %s Flower processes a previous flp process left (%s)", killed, owner)
