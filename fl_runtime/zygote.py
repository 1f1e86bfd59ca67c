"""A zygote: one process imports flwr, torch and scikit-learn once; the Flower processes fork from it.

    python -m fl_runtime.zygote --listen NAME [--preload MODULE ...]

Why: the deployment engine runs 7 Flower processes beside its SuperLink (the ServerApp launcher,
3 SuperNodes, 3 ClientApp executors), and each started as a new interpreter importing flwr, torch
or scikit-learn for itself: ~30 CPU-seconds of imports, all at once on this 2-core machine, before
a first job could start (measured: SuperNodes 2.9 CPU-s each, executors 5.1, the launcher 5.8).
Forked from a zygote that imported them once, each starts with them loaded.

Why by hand: `multiprocessing`'s forkserver is one per interpreter (several platforms in one
process would share it, with the first one's environment), and what it forks keeps the
forkserver's environment in /proc, so the owner marker `fl_runtime.processes` finds a tree by
could not tell one platform's processes from another's. This zygote belongs to one engine, starts
with that engine's environment and marker, and forks a child per request: in a session of its own
(so its tree can be signalled, and it outlives a restart of the zygote), with the engine's
environment, working directory and log file, running `<module>.main(argv)` as
`python -m <module> argv` would.

Protocol, on a Linux abstract socket: one JSON line per connection, `{"module", "argv", "env",
"cwd", "log"}`; the answer is `{"pid": N}` or `{"error": "..."}`. The zygote reaps its children;
the engine watches each by pid (`ForkedProcess`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from fl_runtime.fast_node import abstract_address
from fl_runtime.processes import OWNER_ENV, ManagedProcess, session_members, stop_session

log = logging.getLogger("flp.zygote")

REAP_INTERVAL_S = 0.2
FORK_TIMEOUT_S = 120.0  # a fresh zygote answers once its preloads are imported
SERVED_MODULES = ("fl_runtime.fast_node", "fl_runtime.fast_serverapp")


# --- in the zygote ---------------------------------------------------------------------------


def _child(request: Mapping[str, Any], listener: socket.socket, conn: socket.socket, in_session: int) -> None:
    """In the forked child: become `python -m <module> argv` in its own session, then exit."""
    code: int = 1
    try:
        os.setsid()
        with contextlib.suppress(OSError):  # `ps -o comm`, top and psutil's name() show its name
            Path("/proc/self/comm").write_text(request.get("name", "")[:15] or "flp-forked")
        listener.close()
        conn.close()
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.close(in_session)  # the zygote answers with the pid only now: a stop reaches the session
        module = request["module"]
        sys.argv = [module, *request["argv"]]
        importlib.import_module(module).main(list(request["argv"]))
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()  # what interpreter exit would run (os._exit skips it)
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _peer_is_our_engine(conn: socket.socket) -> bool:
    """An abstract socket has no file permissions: anyone on the host may connect to it. Only the
    engine that started this zygote (its parent, same user) may have it fork."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid() and pid == os.getppid())


def _parse(line: bytes) -> dict[str, Any]:
    request = json.loads(line)
    if not isinstance(request, dict):
        raise ValueError("a request is a JSON object")
    if request.get("module") not in SERVED_MODULES:
        raise ValueError(f"not a module the zygote serves: {request.get('module')!r}")
    kinds = {"argv": list, "env": dict, "cwd": str, "log": str}
    for key, kind in kinds.items():
        if not isinstance(request.get(key), kind):
            raise ValueError(f"{key!r} missing or not a {kind.__name__}")
    return request


def _answer(conn: socket.socket, listener: socket.socket) -> None:
    with conn:
        conn.settimeout(10.0)
        line = conn.makefile("rb").readline()  # read before answering: closing on unread bytes resets the peer
        if not _peer_is_our_engine(conn):
            conn.sendall(json.dumps({"error": "only the engine that started this zygote may use it"}).encode() + b"\n")
            return
        try:
            request = _parse(line)
        except ValueError as exc:  # json's errors are ValueErrors too
            conn.sendall(json.dumps({"error": str(exc)}).encode() + b"\n")
            return
        sys.stdout.flush()
        sys.stderr.flush()
        in_session_r, in_session_w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(in_session_r)
            os.close(in_session_w)
            raise
        if pid == 0:
            os.close(in_session_r)
            _child(request, listener, conn, in_session_w)
        os.close(in_session_w)
        with open(in_session_r, "rb") as in_session:
            in_session.read()  # EOF: the child closed its end after setsid (or died)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def serve(name: str, preloads: Sequence[str]) -> None:
    """Bind first (forks asked for meanwhile queue), import, then fork on request until SIGTERM."""
    from fl_runtime.fast_node import preload

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(abstract_address(name))
    listener.listen(64)
    loaded = preload(preloads)
    if threading.active_count() > 1:  # a fork copies only the calling thread
        log.warning("zygote has %d threads after its imports; children get only the main one", threading.active_count())
    log.info("zygote %s ready; preloaded %s", name, ", ".join(loaded))

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        _reap()
        if select.select([listener], [], [], REAP_INTERVAL_S)[0]:
            conn, _ = listener.accept()
            try:
                _answer(conn, listener)
            except OSError as exc:  # the asker gave up; it sees a missing answer
                log.warning("a fork request failed: %s", exc)


def default_preloads() -> list[str]:
    from fl_runtime.fast_node import PRELOAD
    from fl_runtime.fast_serverapp import SERVERAPP_PRELOAD

    extra = ["flwr.supernode.cli.flower_supernode", "flwr.supernode.start_client_internal", *SERVED_MODULES]
    return list(dict.fromkeys([*PRELOAD, *SERVERAPP_PRELOAD, *extra]))


def main(argv: Sequence[str] | None = None) -> None:
    handler = logging.StreamHandler()  # ours only: the children configure logging for themselves
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(prog="python -m fl_runtime.zygote")
    parser.add_argument("--listen", required=True, help="abstract socket name the engine asks for forks on")
    parser.add_argument("--preload", action="append", help="a module to import once (default: Flower's, torch's)")
    ns = parser.parse_args(argv)
    serve(ns.listen, ns.preload or default_preloads())


# --- in the engine -----------------------------------------------------------------------------


class ZygoteProcess(ManagedProcess):
    """The zygote as an owned process. Stopping or restarting it leaves the processes it forked
    running (each in its own session; the engine stops them one by one), but they share its
    environment, owner marker included, so a later platform still finds them as leftovers."""

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path | None = None,
        preloads: Sequence[str] = (),
    ) -> None:
        self.listen = f"flp-zygote-{os.getpid()}-{id(self):x}-{time.monotonic_ns()}"
        argv = [sys.executable, "-m", "fl_runtime.zygote", "--listen", self.listen]
        argv += [arg for module in preloads for arg in ("--preload", module)]
        super().__init__(name, argv, env, log_file, cwd)

    def tree(self) -> list[int]:
        return session_members(self.pid) if self.running() else []

    def reap_orphans(self) -> list[int]:
        return []  # what carries its marker outside its tree is the processes it forked, alive

    def stop(self, grace_s: float = 5.0) -> None:
        if self.proc is None:
            return
        stop_session(self.proc.pid, grace_s)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=grace_s)
        self._untrack()

    def fork(
        self, module: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_file: Path, name: str = ""
    ) -> int:
        """Ask the zygote for a child running `python -m module argv` (its process name `name`); its pid."""
        request = {"module": module, "argv": list(argv), "env": dict(env), "cwd": str(cwd), "log": str(log_file)}
        request["name"] = name
        deadline = time.monotonic() + FORK_TIMEOUT_S
        while True:
            if not self.running():
                raise RuntimeError(f"{self.name} is not running; see {self.log_file}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(max(1.0, deadline - time.monotonic()))
                    sock.connect(abstract_address(self.listen))
                    sock.sendall(json.dumps(request).encode() + b"\n")
                    answer = json.loads(sock.makefile("rb").readline() or b"{}")
                break
            except (ConnectionRefusedError, FileNotFoundError):  # not bound yet: just started
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if "pid" not in answer:
            raise RuntimeError(f"{self.name} did not fork {module}: {answer.get('error', 'no answer')}")
        return int(answer["pid"])


class ForkedProcess(ManagedProcess):
    """An owned process forked by the engine's zygote instead of started as a new interpreter:
    the same start, restart, health check and stop as a `ManagedProcess`, watched by pid."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path,
        zygote: ZygoteProcess,
    ) -> None:
        super().__init__(name, argv, env, log_file, cwd)
        if self.argv[1:2] != ["-m"] or len(self.argv) < 3:
            raise ValueError(f"a zygote forks `python -m MODULE ...` commands, not {self.argv}")
        self.zygote = zygote
        # what it forks keeps the zygote's /proc environment, marker included; its own
        # subprocesses get this one, so leftovers of the whole tree are found by it
        self.owner = zygote.owner
        self.env[OWNER_ENV] = zygote.owner
        self._process: psutil.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cwd = self.cwd or Path.cwd()
        pid = self.zygote.fork(self.argv[2], self.argv[3:], self.env, cwd, self.log_file, self.name)
        try:
            self._process = psutil.Process(pid)
        except psutil.NoSuchProcess:  # exited and reaped already: not running, restarted later
            self._process = None
            return
        self._track()

    def running(self) -> bool:
        try:
            return (
                self._process is not None
                and self._process.is_running()
                and self._process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.NoSuchProcess:
            return False

    def tree(self) -> list[int]:
        return session_members(self.pid) if self.pid is not None else []

    def reap_orphans(self) -> list[int]:
        return []  # its descendants stay in its session (no Ray here)

    def stop(self, grace_s: float = 5.0) -> None:
        if self._process is None:
            return
        stop_session(self._process.pid, grace_s)
        self._untrack()


if __name__ == "__main__":
    main()
