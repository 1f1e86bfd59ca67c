"""The SuperLink's ServerApps started warm: each run's `flwr-serverapp` forked from a preloaded process.

    python -m fl_runtime.fast_serverapp --runtime-api-address HOST:PORT [--root-certificates CA]

Why this is written by hand: with `--isolation subprocess`, Flower 1.42's SuperLink starts a
SuperExec that launches a new `flwr-serverapp` interpreter for every run. Importing flwr, torch
and scikit-learn, and torch's lazy loading on its first use, took 7-16 s of a deployment-mode job
here before the ServerApp sent its first message (the 2 cores are shared with the SuperLink, the
SuperNodes and the platform). Flower has no warm launcher outside Kubernetes. This process takes
the SuperExec's place for the SuperLink's `--isolation process`: it imports and warms those
libraries once, acquires each ServerApp task from the SuperLink's Runtime API as Flower's SuperExec
does, and runs it with Flower's own `run_serverapp` (what `flwr-serverapp` runs) in a child forked
from itself. Unlike the SuperNode's ClientApps (`fast_node`, which run in place), a run keeps its
own process: runs are long, several may run at once, and a run that is stopped or crashes takes
only its own process with it. Tied to flwr 1.42 (pinned), as `fast_node.py` is.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fl_runtime.fast_node import preload, superexec_client

log = logging.getLogger("flp.fast_serverapp")

TASK_POLL_S = 0.25  # as FLWR_SUPEREXEC_TASK_POLL_INTERVAL for Flower's own SuperExec (flower_env)
SERVERAPP_PRELOAD = (
    "numpy",
    "torch",
    "sklearn.datasets",
    "sklearn.model_selection",
    "flwr.serverapp",
    "flwr.app",
    "flwr.superlink.runtime.run_serverapp",
)


def _run_serverapp_in_child(runtime_api_address: str, token: str, insecure: bool, certificates: bytes | None) -> None:
    """In the forked child: what `flwr-serverapp` does, then leave without running the parent's
    exit handlers (they belong to the launcher)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        from queue import Queue

        from flwr.supercore.logger import mirror_output_to_queue, restore_output
        from flwr.superlink.runtime import run_serverapp

        log_queue: Queue[str | None] = Queue()
        mirror_output_to_queue(log_queue)  # the run's output goes to `flwr log`, as Flower's does
        try:
            run_serverapp(
                runtime_api_address=runtime_api_address,
                log_queue=log_queue,
                token=token,
                insecure=insecure,
                certificates=certificates,
                parent_pid=os.getppid(),  # the run ends if its launcher is killed
                runtime_dependency_install=False,
            )
        finally:
            restore_output()
        code = 0
    except SystemExit as exc:  # run_serverapp ends with flwr_exit (sys.exit)
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("ServerApp task failed")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def reap(children: set[int]) -> None:
    """Collect the exit status of every child that has ended (no zombies)."""
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
        children.discard(pid)


def run_launcher(runtime_api_address: str, root_certificates: str | None) -> None:
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType

    loaded = preload(SERVERAPP_PRELOAD)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per AcquireTask
    log.info("ServerApp launcher for %s; preloaded %s", runtime_api_address, ", ".join(loaded))
    insecure = root_certificates is None
    certificates = Path(root_certificates).read_bytes() if root_certificates else None
    client = superexec_client(runtime_api_address, insecure, certificates)
    children: set[int] = set()

    def stop(signum: int, _frame: object) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    request = AcquireTaskRequest(supported_task_types=[TaskType.SERVER_APP.value])
    while True:
        reap(children)
        res = client.AcquireTask(request)
        if res.HasField("task") and res.token:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _run_serverapp_in_child(runtime_api_address, res.token, insecure, certificates)
            children.add(pid)
            continue  # another run may be waiting
        time.sleep(TASK_POLL_S)


def main(argv: Sequence[str] | None = None) -> None:
    handler = logging.StreamHandler()  # ours only: Flower's loggers keep their own handlers
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    parser = argparse.ArgumentParser(prog="python -m fl_runtime.fast_serverapp")
    parser.add_argument("--runtime-api-address", required=True, help="the SuperLink's Runtime API (host:port)")
    parser.add_argument("--root-certificates", help="CA of a TLS SuperLink (default: plain HTTP on loopback)")
    ns = parser.parse_args(argv)
    run_launcher(ns.runtime_api_address, ns.root_certificates)


if __name__ == "__main__":
    main()
