"""`flp serve --workers N`: N `flp serve` processes on one port, as replicas on one data dir.

Each worker is a whole replica (its own stores, the leases deciding which one runs each
background service, followers passing on the projections' commits; see README "Run it on several
machines"), so a worker that dies loses nothing the others need, and it is started again. Each
binds the port with SO_REUSEPORT: the kernel spreads new connections over the workers' sockets.
The first worker starts alone (it creates the data dir, its secrets and the first admin), the
others once it answers.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import FrameType

STARTUP_S = 120.0  # a worker that is not answering by then (or exits before) fails the start
RESTART_PAUSE_S = 1.0


class WorkersFailed(RuntimeError):
    """A worker could not start: the message says which and how it ended."""


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other workers bind too (SO_REUSEPORT)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _worker(host: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "flp", "serve", "--host", host, "--port", str(port), "--reuse-port"])


def _wait_answering(url: str, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise WorkersFailed(f"the first worker exited with code {worker.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers (a 503 names what is degraded; the worker runs)
        except OSError:
            pass
        time.sleep(0.1)
    raise WorkersFailed(f"the first worker did not answer on {url} within {STARTUP_S:.0f} s")


def serve_workers(host: str, port: int, count: int) -> int:
    """Run `count` workers until SIGINT or SIGTERM; returns the exit code."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise WorkersFailed("--workers needs SO_REUSEPORT (Linux, BSD); run one flp serve per port instead")
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    workers = [_worker(host, port)]
    try:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        _wait_answering(f"http://{shown}:{port}", workers[0])
        workers += [_worker(host, port) for _ in range(count - 1)]
        print(
            f"flp: {count} workers on http://{host}:{port} (pids {' '.join(str(w.pid) for w in workers)})", flush=True
        )
        while not stopping:
            time.sleep(0.2)
            for i, worker in enumerate(workers):
                if worker.poll() is not None and not stopping:
                    print(
                        f"flp: worker {worker.pid} exited with code {worker.returncode}; starting another", flush=True
                    )
                    time.sleep(RESTART_PAUSE_S)
                    workers[i] = _worker(host, port)
        return 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
