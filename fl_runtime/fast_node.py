"""A Flower SuperNode at simulation speed: prompt polling and a long-lived, warm ClientApp process.

    python -m fl_runtime.fast_node supernode [--wake NAME] [--woken-as PREFIX] [--heartbeat-interval S] <Flower's>
    python -m fl_runtime.fast_node executor --runtime-api-address HOST:PORT [--wake NAME]

Why this is written by hand: Flower 1.42 has no long-lived ClientApp and no setting for the waits
that make a deployment-mode round take ~20 s on a small machine:
- the SuperNode sleeps a fixed 3 s after every pull from the SuperLink that brought no message,
  and 0.5 s between checks for its ClientApp's reply (`flwr.supernode.start_client_internal`);
- its SuperExec starts a new `flwr-clientapp` interpreter for every message (importing flwr,
  torch and scikit-learn costs seconds of CPU each time, several per round per node).

`supernode` runs Flower's own `flower-supernode` with those sleeps shortened (backing off from
20 ms to 0.5 s while nothing comes, so an idle node polls twice a second). `executor` replaces
`flower-superexec` and its `flwr-clientapp` processes for `--isolation process`: one process per
SuperNode that imports the heavy libraries once, acquires each task from the SuperNode's Runtime
API as Flower's SuperExec does (woken by its SuperNode through a datagram the moment a message
arrives, instead of polling it every few milliseconds) and runs it itself, speaking the same
Runtime API protocol as Flower's `run_clientapp` (`run_task`). The app is installed and imported
once per FAB, and what it caches (its data partition) stays warm from one message to the next, as
in Flower's simulation engine, whose actors also live across messages. Tasks run one at a time. A
ClientApp that raises gets Flower's Error reply and the process takes the next task; one that
kills the process is restarted by its owner (the platform, or systemd on a device). Forking a
fresh child per message, as this did before, cost ~0.18 CPU-seconds each (re-importing the app,
re-reading the data, a new HTTP client); running in place costs ~0.05. Only flwr and the standard
library are needed (and `flower_deps.py` and `inline_middleware.py`, flwr's own FastAPI and
Starlette only), so the three files run on an edge device as they are. Tied to flwr 1.42
(pinned), as `control.py` is.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("flp.fast_node")

IDLE_POLL_FIRST_S = 0.1  # after a message: the next one (evaluate after train) comes soon
IDLE_POLL_MAX_S = 0.5  # an idle node: two pulls a second
IDLE_POLL_GROWTH = 1.25
IDLE_POLL_WOKEN_S = 0.5  # a node the SuperLink wakes (fast_link): pulls at once, else twice a second
REPLY_POLL_S = 0.02  # the ClientApp's reply is checked in the SuperNode's own state (no network)
TASK_POLL_S = 0.05  # AcquireTask on the local Runtime API, when nothing wakes the executor
TASK_POLL_WOKEN_S = 2.0  # the SuperNode wakes its executor: poll only as a fallback
FLOWER_IDLE_SLEEP_S = 3  # the fixed sleeps of flwr 1.42's SuperNode loop this module shortens
FLOWER_REPLY_SLEEP_S = 0.5
MIN_NODE_HEARTBEAT_S = 10  # Flower waits (interval - 5 s) between node heartbeats
OBJECT_PULL_BACKOFF = {"initial_backoff": 0.01, "backoff_cap": 0.25, "max_tries_per_object": 2000}
PRELOAD = (
    "numpy",
    "torch",
    "sklearn.datasets",
    "sklearn.model_selection",
    "flwr.clientapp",
    "flwr.app",
    "flwr.supernode.runtime.run_clientapp",  # ~0.4 s of imports the first task would wait for
)


class PromptClock:
    """Stands in for the `time` module inside Flower's SuperNode loop: every attribute is the real
    one except `sleep`, whose fixed waits become a short, backing-off poll, or, for a node the
    SuperLink wakes (`woken_as`, fast_link on one host), a wait for its wake-up."""

    def __init__(self, real: ModuleType = time, woken_as: str | None = None) -> None:
        self._real = real
        self._woken_as = woken_as  # the SuperLink wakes this node by this prefix + its node id
        self._woken_by: socket.socket | None = None  # bound once the node knows its id (`listen`)
        self._node_id: int | None = None
        self._pending = 0  # wake-ups taken that no pull has answered yet: messages stored for it
        self._pull_due = True  # the fallback wait is over (or nothing listened yet): pull
        self.idle_s = IDLE_POLL_FIRST_S

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def listen(self, node_id: int) -> None:
        """Take the SuperLink's wake-ups for `node_id` (again, when the node was given a new id);
        if the name cannot be bound, the node polls as one nobody wakes."""
        if self._woken_as is None or node_id == self._node_id:
            return
        if self._woken_by is not None:
            self._woken_by.close()
        self._node_id, self._woken_by, self._pull_due = node_id, None, True
        try:
            self._woken_by = _wake_socket(node_wake_address(self._woken_as, node_id))
        except OSError as exc:
            log.warning("not woken by the SuperLink (%s): polling", exc)

    def sleep(self, seconds: float) -> None:
        if seconds == FLOWER_IDLE_SLEEP_S and self._woken_by is not None:  # a pull brought nothing
            self._pending += _wait_for_wake(self._woken_by, IDLE_POLL_WOKEN_S)
            self._pull_due = True
        elif seconds == FLOWER_IDLE_SLEEP_S:
            self._real.sleep(self.idle_s)
            self.idle_s = min(self.idle_s * IDLE_POLL_GROWTH, IDLE_POLL_MAX_S)
        elif seconds == FLOWER_REPLY_SLEEP_S:  # waiting for the ClientApp's reply or its objects
            self.idle_s = IDLE_POLL_FIRST_S
            self._real.sleep(REPLY_POLL_S)
        else:
            self._real.sleep(seconds)

    def message_arrived(self) -> None:
        self.idle_s = IDLE_POLL_FIRST_S

    def pull_due(self) -> bool:
        """Whether the node's next pull may find something. Flower's loop pulls again right after
        it pushed a reply, and the next message of a round (evaluate after train) is stored only
        once every node replied and the ServerApp aggregated, so that pull came back empty every
        time. A node the SuperLink wakes pulls while wake-ups it took outnumber the pulls since
        (one per message stored for it: a pull brings one message, and one stored while the node
        was busy waits in its socket) or when its fallback wait is over; a node nobody wakes
        pulls whenever Flower's loop does."""
        if self._woken_by is None:
            return True
        self._pending += _drain(self._woken_by)
        if not (self._pull_due or self._pending):
            return False
        self._pull_due = False
        self._pending = max(0, self._pending - 1)
        return True


def shorten_object_pull_backoff() -> None:
    """Flower pulls a message's objects with a 1 s first backoff doubling to 10 s whenever one is
    not there yet, and a ClientApp asks for them while its SuperNode is still receiving them, so
    each message waited 1-3 s more. Same retries, promptly: 10 ms doubling to 250 ms (about eight
    minutes before an object that never comes fails the message, as ~80 min did before)."""
    from flwr.supercore.inflatable import inflatable_utils

    for fn in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        if fn.__kwdefaults__ is not None:
            fn.__kwdefaults__.update(OBJECT_PULL_BACKOFF)


def sign_with_p256_when_keyless(fleet_http_connection: Any) -> None:
    """A SuperNode given no key of its own (loopback, or TLS without SuperNode authentication)
    signs every Fleet request with an identity key it makes at start, and flwr 1.42 makes it on
    P-384, whose ECDSA check costs the SuperLink ~0.57 ms of CPU per request here and its signing
    the node ~0.22 ms; on P-256, also a NIST curve the SuperLink accepts, they cost ~0.08 and ~0.03
    ms. About 70 Fleet requests a round each carry one. A node started with
    `--auth-supernode-private-key` keeps the key it was given. (`fleet_http_connection`, passed
    in for tests, is flwr's module whose `generate_key_pairs` makes that key.)"""
    from cryptography.hazmat.primitives.asymmetric import ec

    def generate_key_pairs() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey]:
        private_key = ec.generate_private_key(ec.SECP256R1())
        return private_key, private_key.public_key()

    fleet_http_connection.generate_key_pairs = generate_key_pairs


def abstract_address(name: str) -> str:
    return "\0" + name  # Linux abstract socket: no file to clean up, no path length limit


def wake(name: str | None) -> None:
    """Tell the executor named `name` that a task is waiting (best effort: it also polls)."""
    if not name:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.sendto(b"!", abstract_address(name))


def node_wake_address(prefix: str, node_id: int) -> str:
    """The name the SuperLink (fast_link) wakes SuperNode `node_id` by, when it stores a message
    for it: one name per node, so each node's wake-ups count its own messages."""
    return f"{prefix}{node_id}"


def install_prompt_clock(module: Any, wake_name: str | None = None, woken_as: str | None = None) -> PromptClock:
    """Shorten the sleeps of `flwr.supernode.start_client_internal` (passed in, for tests), wake
    the executor `wake_name` as soon as a pulled message has become a task, and, given
    `woken_as` (a prefix), pull as soon as the SuperLink says a message for this node is there
    (fast_link, on one host)."""
    clock = PromptClock(woken_as=woken_as)
    pull: Callable[..., Any] = module._pull_and_store_message

    def pull_and_note(*args: Any, **kwargs: Any) -> Any:
        state = kwargs.get("state")
        if state is not None:  # Flower's loop passes its node state, which knows the node's id
            clock.listen(state.get_node_id())
        if not clock.pull_due():
            return None  # as an empty pull: Flower's loop waits (`PromptClock.sleep`), then asks again
        run_id = pull(*args, **kwargs)
        if run_id is not None:
            clock.message_arrived()
            wake(wake_name)
        return run_id

    module.time = clock
    module._pull_and_store_message = pull_and_note
    return clock


def finish_tasks_of_stopped_runs(module: Any) -> None:
    """Make `flwr.supernode.start_client_internal._pull_and_store_message` (passed in, for tests)
    finish the task it created for a message whose run stopped while the message was received.

    Written by hand for a flwr 1.42 gap: the SuperNode creates the task and stores the message
    before it pulls the message's objects; when the run stops meanwhile (a cancel), the pull
    raises RunNotRunningException, which is logged ("Ignoring message") while the task and the
    contentless message stay. The task looks alive to its heartbeat, so the long-lived executor
    that took it waited for objects that never come (~8 minutes of retries), and every later
    message of that node waited behind it. This does what Flower's own handler of any other
    failed pull does: delete the message and its objects, and finish the task as failed."""
    pull: Callable[..., Any] = module._pull_and_store_message

    def pull_or_finish(*args: Any, **kwargs: Any) -> Any:
        state, store, receive = kwargs["state"], kwargs["object_store"], kwargs["receive"]
        seen: dict[str, Any] = {}

        def receive_and_note() -> Any:
            seen["received"] = received = receive()
            return received

        def create_task_and_note(*task_args: Any, **task_kwargs: Any) -> Any:
            seen["task_id"] = task_id = create_task(*task_args, **task_kwargs)
            return task_id

        create_task = state.create_task
        state.create_task = create_task_and_note  # only this loop creates tasks on a SuperNode
        try:
            run_id = pull(*args, **{**kwargs, "receive": receive_and_note})
        finally:
            del state.create_task
        if run_id is None and seen.get("task_id") is not None and seen.get("received"):
            from flwr.common.constant import SubStatus

            message_id = seen["received"][0].metadata.message_id
            state.delete_messages(message_ids=[message_id])
            with contextlib.suppress(Exception):  # already gone when Flower's own handler ran
                store.delete(message_id)
            state.finish_task(seen["task_id"], sub_status=SubStatus.FAILED, details="its run stopped meanwhile")
        return run_id

    module._pull_and_store_message = pull_or_finish


def set_node_heartbeat_interval(seconds: int) -> None:
    """The SuperNode's heartbeat interval (Flower's HEARTBEAT_DEFAULT_INTERVAL, 30 s, not a flag
    in flwr 1.42). The SuperLink keeps a node online for 2 intervals after its last heartbeat, and
    a node that died without saying so (a killed process the platform restarts under a new node
    id) holds the next round's first query until then: up to 60 s. The interval is both the pace
    of the node's heartbeats (`flwr.supercore.heartbeat`) and what it tells the SuperLink in each
    (`fleet_http_connection`), so both are set. Flower waits `interval - 5 s` (its call timeout)
    between heartbeats, so the interval must leave room for that."""
    from flwr.common.constant import HEARTBEAT_CALL_TIMEOUT
    from flwr.supercore import heartbeat
    from flwr.supernode import fleet_http_connection

    if seconds < MIN_NODE_HEARTBEAT_S:
        raise SystemExit(f"--heartbeat-interval must be at least {MIN_NODE_HEARTBEAT_S} s, not {seconds}")
    assert seconds > HEARTBEAT_CALL_TIMEOUT
    heartbeat.HEARTBEAT_DEFAULT_INTERVAL = seconds  # type: ignore[attr-defined]
    fleet_http_connection.HEARTBEAT_DEFAULT_INTERVAL = seconds  # type: ignore[attr-defined]


def take_option(args: list[str], name: str) -> str | None:
    """Remove `name VALUE` (one of our options, not Flower's) from `args`; the value, or None."""
    if name not in args:
        return None
    at = args.index(name)
    value = args[at + 1]
    del args[at : at + 2]
    return value


def run_supernode(argv: Sequence[str]) -> None:
    from flwr.supernode import fleet_http_connection, start_client_internal
    from flwr.supernode import main as supernode_main
    from flwr.supernode.cli.flower_supernode import flower_supernode

    try:
        from fl_runtime import flower_deps, inline_middleware
    except ImportError:  # on a device, ansible/ installs them beside this file
        import flower_deps  # type: ignore[no-redef]
        import inline_middleware  # type: ignore[no-redef]

    args = list(argv)
    wake_name = take_option(args, "--wake")  # ours, not Flower's
    woken_as = take_option(args, "--woken-as")  # the SuperLink on this host wakes the node by it + its id
    heartbeat = take_option(args, "--heartbeat-interval")
    if heartbeat is not None:
        set_node_heartbeat_interval(int(heartbeat))
    finish_tasks_of_stopped_runs(start_client_internal)
    sign_with_p256_when_keyless(fleet_http_connection)
    install_prompt_clock(start_client_internal, wake_name, woken_as)
    shorten_object_pull_backoff()
    flower_deps.install(supernode_main)  # its Runtime API's cheap `def` dependencies without a thread hop
    inline_middleware.install(supernode_main)  # its two HTTP middlewares without a task per request
    sys.argv = ["flower-supernode", *args]
    flower_supernode()


def preload(modules: Sequence[str] = PRELOAD) -> list[str]:
    """Import what every ClientApp needs once, at start; missing ones are skipped."""
    loaded = []
    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            loaded.append(name)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)  # one core per node: several SuperNodes share the machine
    if "sklearn.model_selection" in sys.modules:
        _warm_sklearn(sys.modules["sklearn.model_selection"])
    return loaded


def _warm_sklearn(model_selection: Any) -> None:
    """scikit-learn's first input check asks narwhals to scan every installed package's entry
    points for dataframe plugins (~45 ms, a third of a ClientApp's own work here); narwhals caches
    the scan per process, so take it at start, before the first task waits for it."""
    import numpy as np

    x, y = np.zeros((4, 1)), np.array([0, 0, 1, 1])
    model_selection.train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)


class TaskStopped(Exception):
    """The SuperNode ended the running task (Flower's task heartbeat raises SIGINT for it)."""


class TaskSignals:
    """Tells the SIGINT a task's heartbeat raises from an operator's (Ctrl-C): a heartbeat's stops
    the running task, or is dropped when the task ended meanwhile; an operator's stops the
    executor (one that coincides with a heartbeat's arrives as one signal: press again).

    Written by hand because Flower's `make_task_heartbeat_fn_http` (flwr 1.42) is built for a
    process that runs one task and exits: it raises SIGINT whenever the SuperNode answers that the
    task is over. In this long-lived process that answer can come just after the task finished
    (its first heartbeat is still in flight when a ClientApp fails fast), and the SIGINT then
    landed between tasks and stopped the executor. `heartbeat_fn` is Flower's function, except
    that it leaves a stop request before it raises the signal.
    """

    def __init__(self) -> None:
        self.running = False  # the main thread runs a ClientApp
        self._requests = threading.Semaphore(0)  # stop requests of heartbeats, one per signal

    def heartbeat_fn(self, client: Any) -> Callable[[], bool]:
        import httpx
        from flwr.proto.runtime_pb2 import SendTaskHeartbeatRequest

        request = SendTaskHeartbeatRequest()

        def fn() -> bool:
            try:
                res = client.SendTaskHeartbeat(request)
            except httpx.TransportError:
                return False
            except httpx.HTTPStatusError as err:
                if err.response.status_code in (httpx.codes.SERVICE_UNAVAILABLE, httpx.codes.GATEWAY_TIMEOUT):
                    return False
                raise
            if not res.success:  # the SuperNode ended the task
                self._requests.release()
                signal.raise_signal(signal.SIGINT)
            return True

        return fn

    def on_sigint(self, signum: int, _frame: object) -> None:
        if self._requests.acquire(blocking=False):
            if self.running:
                raise TaskStopped()
            return  # that task is over already
        raise SystemExit(0)


def forget_modules_under(directory: Path) -> list[str]:
    """Drop every imported module whose file lies under `directory`, and the directory from
    `sys.path`, so another FAB's modules of the same names import afresh."""
    root = directory.resolve()
    gone = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(root):
            del sys.modules[name]
            gone.append(name)
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != root]
    importlib.invalidate_caches()
    return gone


class WarmClientApps:
    """The ClientApp of the FAB this executor ran last, installed and imported once. A task of
    another FAB first forgets the old one's modules (an updated app often keeps its module names)."""

    def __init__(self) -> None:
        self.fab_hash: str | None = None
        self.project_dir: Path | None = None
        self.app: Any = None

    def load(self, run: Any, fab: Any) -> Any:
        if fab.hash_str == self.fab_hash:
            return self.app
        from flwr.cli.install import install_from_fab
        from flwr.clientapp.utils import get_load_client_app_fn
        from flwr.common.config import get_project_dir

        if self.project_dir is not None:
            forget_modules_under(self.project_dir)
        self.fab_hash = self.app = self.project_dir = None
        install_from_fab(fab.content, skip_prompt=True)
        load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)
        self.project_dir = Path(get_project_dir(run.fab_id, run.fab_version, fab.hash_str))
        app = load(run.fab_id, run.fab_version, fab.hash_str)
        self.fab_hash, self.app = fab.hash_str, app
        return app


def run_task(
    runtime_api_address: str,
    token: str,
    insecure: bool,
    certificates: bytes | None,
    apps: WarmClientApps,
    signals: TaskSignals,
) -> str:
    """One task as Flower's `run_clientapp` (flwr 1.42) runs it in a fresh `flwr-clientapp`
    process, here in this long-lived one: pull the message, context, run and FAB from the
    SuperNode, run the ClientApp, push its reply (an Error reply if it raised), then the task's
    outcome. Returns the sub-status pushed."""
    from flwr.app import Message
    from flwr.app.error import Error
    from flwr.clientapp.client_app import LoadClientAppError
    from flwr.common.constant import ErrorCode, SubStatus
    from flwr.supercore.heartbeat import HeartbeatSender
    from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient
    from flwr.supercore.runtime.tracing import RuntimeTracingInterceptor
    from flwr.supernode.runtime.run_clientapp import pull_task_input, push_message, push_task_output

    retry_invoker = make_simple_http_retry_invoker()
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=insecure,
        root_certificates=certificates,
        interceptors=[
            RuntimeTracingInterceptor(),
            RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
            RuntimeTokenHttpInterceptor(token),
        ],
        retry_invoker=retry_invoker,
    )
    heartbeat = HeartbeatSender(signals.heartbeat_fn(client))
    message: Any = None
    reply: Any = None
    context: Any = None
    sub_status, details = SubStatus.FAILED, "ClientApp task failed due to unknown reason"
    signals.running = True
    try:
        heartbeat.start()
        message, context, run, fab = pull_task_input(client)
        client_app = apps.load(run, fab)
        reply = client_app(message=message, context=context)
        sub_status, details = SubStatus.COMPLETED, ""
    except TaskStopped:
        details = "Task stopped."
    except Exception as ex:  # as Flower's run_clientapp: the ServerApp gets an Error reply
        code = ErrorCode.CLIENT_APP_RAISED_EXCEPTION
        details = f"{type(ex)}:<'{ex}'>"
        if isinstance(ex, LoadClientAppError):
            code = ErrorCode.LOAD_CLIENT_APP_EXCEPTION
            details = "An exception was raised when attempting to load `ClientApp`"
        log.error("ClientApp raised an exception", exc_info=ex)
        if message is not None:
            reply = Message(Error(code=code, reason=details), reply_to=message)
    finally:
        signals.running = False
        if reply is not None and context is not None:
            try:
                push_message(client, reply, context)
            except Exception as ex:
                log.error("Failed to push reply message", exc_info=ex)
        retry_invoker.max_tries = 1  # as Flower's exit handler: do not block on the final status
        push_task_output(client=client, context=context, sub_status=sub_status, details=details)
        if heartbeat.is_running:
            heartbeat.stop()
        client.close()
    return sub_status


def _wake_socket(name: str | None) -> socket.socket | None:
    if not name:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(abstract_address(name))
    return sock


def _wait_for_wake(sock: socket.socket | None, timeout_s: float) -> int:
    """Until a wake-up comes or `timeout_s` is over; how many wake-ups it took."""
    if sock is None:
        time.sleep(timeout_s)
        return 0
    if select.select([sock], [], [], timeout_s)[0]:
        return _drain(sock)  # one wait for however many came
    return 0


def _drain(sock: socket.socket) -> int:
    """Take every wake-up waiting in `sock`, without blocking; how many there were."""
    taken = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(16, socket.MSG_DONTWAIT)
            taken += 1
    return taken


def wait_for_listener(address: str, poll_s: float = 0.1) -> None:
    """Until the SuperNode's Runtime API accepts connections (it may start after the executor;
    Flower's client would otherwise back off for many seconds on its first refusals)."""
    host, _, port = address.rpartition(":")
    while True:
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
            return
        except OSError:
            time.sleep(poll_s)


def superexec_client(runtime_api_address: str, insecure: bool, certificates: bytes | None) -> Any:
    """Flower's Runtime API client as its SuperExec builds one, once the API accepts connections."""
    from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    wait_for_listener(runtime_api_address)
    return RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=insecure,
        root_certificates=certificates,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
        retry_invoker=make_simple_http_retry_invoker(),
    )


def run_executor(
    runtime_api_address: str, insecure: bool, root_certificates: str | None, wake_name: str | None = None
) -> None:
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.constant import TaskType

    loaded = preload()
    shorten_object_pull_backoff()  # for the ClientApp's pulls of its message
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per AcquireTask
    log.info("ClientApp executor for %s; preloaded %s", runtime_api_address, ", ".join(loaded))
    certificates = Path(root_certificates).read_bytes() if root_certificates else None
    client = superexec_client(runtime_api_address, insecure, certificates)
    wake_socket = _wake_socket(wake_name)
    apps = WarmClientApps()
    signals = TaskSignals()

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signals.on_sigint)
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
    while True:
        res = client.AcquireTask(request)
        if res.HasField("task") and res.token:
            run_task(runtime_api_address, res.token, insecure, certificates, apps, signals)
            if wake_socket is None or _drain(wake_socket):
                continue  # another task may be waiting (several runs): its wake-up came meanwhile
        _wait_for_wake(wake_socket, TASK_POLL_S if wake_socket is None else TASK_POLL_WOKEN_S)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["supernode"]:
        run_supernode(args[1:])  # logs as Flower's SuperNode does
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m fl_runtime.fast_node executor")
    parser.add_argument("command", choices=["executor"])
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's Runtime API (host:port)")
    parser.add_argument("--wake", help="name the SuperNode (`supernode --wake NAME`) wakes this executor by")
    parser.add_argument("--root-certificates", help="CA of a TLS Runtime API (default: plain HTTP on loopback)")
    ns = parser.parse_args(args)
    run_executor(ns.runtime_api_address, ns.root_certificates is None, ns.root_certificates, ns.wake)


if __name__ == "__main__":
    main()
