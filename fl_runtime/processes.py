"""Child processes the platform owns: own process group, health-checked, killed with the platform.

Every process starts in a new session so its whole tree can be signalled; `stop()` terminates
the group and every process carrying its owner marker (found with psutil, by environment), and
an atexit hook stops whatever is still running when the interpreter exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

HEALTH_PROBE_INTERVAL_S = 0.2
_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


OWNER_ENV = "FLP_PROCESS_OWNER"


def owned_processes(owner: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment carries `FLP_PROCESS_OWNER=<owner>`.

    Children inherit the marker even when they start their own session (Ray does), so this finds
    every process of a tree, also after its parent died.
    """
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["environ", "status"]):  # unreadable fields come back as None
        environ = proc.info["environ"] or {}
        if proc.pid != me and environ.get(OWNER_ENV) == owner and proc.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def owned_pids(owner: str) -> list[int]:
    return [int(proc.pid) for proc in owned_processes(owner)]


def _signal_all(procs: list[psutil.Process], sig: signal.Signals) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)


def session_members(sid: int | None) -> list[int]:
    """Live (not zombie) processes of session `sid`: a process started with `setsid` and every
    descendant that did not start a session of its own, also after the leader died."""
    if sid is None:
        return []
    members = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(pid) == sid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                members.append(pid)
    return members


def stop_session(sid: int, grace_s: float) -> None:
    """SIGTERM every process of session `sid`, SIGKILL what is left after `grace_s`, and wait
    (up to `grace_s` more) until none is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_members(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while session_members(sid) and time.monotonic() < deadline:
            time.sleep(0.05)


class ManagedProcess:
    """One owned child process (and its descendants)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.owner = f"{name}-{uuid.uuid4().hex}"
        self.env = {**env, OWNER_ENV: self.owner}
        self.log_file = log_file
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._track()

    def _track(self) -> None:
        with _LIVE_LOCK:  # stopped at interpreter exit if still running
            _LIVE.add(self)

    def _untrack(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def restart(self) -> None:
        """Stop what is left of the tree (e.g. orphaned children) and start again, same argv."""
        self.stop(grace_s=2.0)
        self.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tree(self) -> list[int]:
        """Every live process of this tree (by owner marker), including orphaned descendants."""
        return owned_pids(self.owner)

    def _descendants(self) -> set[int]:
        """Pids still below the root process (none once the root has exited)."""
        if self.proc is None or not self.running():
            return set()
        try:
            return {int(child.pid) for child in psutil.Process(self.proc.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def reap_orphans(self) -> list[int]:
        """Kill processes of this tree that are no longer descendants of the root process.

        Ray leaves its agents (DashboardAgent, RuntimeEnvAgent) running when the simulation
        process that started it exits; they carry the owner marker, so they are found here.
        """
        if self.proc is None:
            return []
        below_root = self._descendants()
        orphans = [p for p in owned_processes(self.owner) if p.pid != self.proc.pid and p.pid not in below_root]
        _signal_all(orphans, signal.SIGKILL)
        return [int(p.pid) for p in orphans]

    def wait_healthy(self, check: Callable[[], bool], timeout_s: float) -> None:
        """Probe until `check()` passes; fail at once if the process exits, or after `timeout_s`."""

        def probe() -> bool:
            if not self.running():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode if self.proc else '?'}; see {self.log_file}"
                )
            return check()

        poll = Retrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(HEALTH_PROBE_INTERVAL_S),
            retry=retry_if_result(lambda healthy: not healthy),
            reraise=True,  # an exit is raised as is, not retried
        )
        try:
            poll(probe)
        except RetryError:
            raise TimeoutError(f"{self.name} not healthy within {timeout_s:g}s; see {self.log_file}") from None

    def stop(self, grace_s: float = 5.0) -> None:
        if self.proc is None:
            return
        _signal_all(owned_processes(self.owner), signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        deadline = time.monotonic() + grace_s
        while self.tree() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _signal_all(owned_processes(self.owner), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_s)
        deadline = time.monotonic() + grace_s  # a killed child may take a moment to be gone (loaded machine)
        while self.tree() and time.monotonic() < deadline:
            time.sleep(0.05)
        self._untrack()


def _stop_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        with contextlib.suppress(Exception):
            proc.stop(grace_s=2.0)


atexit.register(_stop_all)
