"""The deployment engine's speed-ups on their own: the SuperNode's shortened waits, the wake-up
datagram, Flower's object-pull backoff, and the ServerApp's prompt Grid (real Flower objects)."""

from __future__ import annotations

import inspect
import os
import random
import select
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flwr.app import Message
from flwr.supercore.inflatable import inflatable_utils

from fl_runtime import fast_link, fast_node
from fl_runtime.app_dir import APP_DIR

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(APP_DIR))

from flp_flower import prompt_grid  # noqa: E402


class RecordingTime:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def monotonic(self) -> float:
        return 42.0


def test_the_supernode_loop_polls_promptly_and_backs_off_while_idle() -> None:
    real = RecordingTime()
    clock = fast_node.PromptClock(real)  # type: ignore[arg-type]
    assert clock.monotonic() == 42.0  # everything but sleep is the real module's
    for _ in range(40):
        clock.sleep(fast_node.FLOWER_IDLE_SLEEP_S)
    assert real.slept[0] == fast_node.IDLE_POLL_FIRST_S
    assert real.slept == sorted(real.slept) and max(real.slept) == fast_node.IDLE_POLL_MAX_S
    assert sum(real.slept) < 40 * 0.5 < 40 * fast_node.FLOWER_IDLE_SLEEP_S
    clock.message_arrived()
    clock.sleep(fast_node.FLOWER_IDLE_SLEEP_S)
    assert real.slept[-1] == fast_node.IDLE_POLL_FIRST_S
    clock.sleep(fast_node.FLOWER_REPLY_SLEEP_S)
    assert real.slept[-1] == fast_node.REPLY_POLL_S
    clock.sleep(7)  # any other wait is kept as Flower wrote it
    assert real.slept[-1] == 7


def _listener(name: str) -> socket.socket:
    sock = fast_node._wake_socket(name)
    assert sock is not None
    return sock


def test_a_pulled_message_wakes_the_executor_and_an_empty_pull_does_not() -> None:
    name = f"flp-test-{uuid.uuid4().hex}"
    sock = _listener(name)
    results: Iterator[str | None] = iter([None, "run-1"])
    module = SimpleNamespace(_pull_and_store_message=lambda **_: next(results), time=time)
    clock = fast_node.install_prompt_clock(module, name)
    assert module.time is clock
    try:
        assert module._pull_and_store_message(state=None) is None
        assert not select.select([sock], [], [], 0.1)[0]  # nothing came: nobody woken
        clock.idle_s = fast_node.IDLE_POLL_MAX_S
        assert module._pull_and_store_message(state=None) == "run-1"
        assert select.select([sock], [], [], 2.0)[0]
        assert clock.idle_s == fast_node.IDLE_POLL_FIRST_S
        started = time.monotonic()
        fast_node._wait_for_wake(sock, 30.0)  # returns at once, and drains the datagram
        assert time.monotonic() - started < 5
        assert not select.select([sock], [], [], 0.05)[0]
    finally:
        sock.close()
    fast_node.wake(name)  # nobody listens any more: best effort, no error
    fast_node.wake(None)


def test_a_woken_node_pulls_once_per_wake_up_or_after_its_fallback_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower's loop pulls again right after a reply: a node the SuperLink wakes (by its node id)
    skips that pull unless a wake-up came meanwhile, pulls once for each message it was woken
    for (a pull brings one), and pulls anyway when its fallback wait is over."""
    monkeypatch.setattr(fast_node, "IDLE_POLL_WOKEN_S", 0.05)
    prefix = f"flp-test-{uuid.uuid4().hex}-node-"
    me = fast_node.node_wake_address(prefix, 7)
    pulls: list[str] = []
    results: Iterator[str | None] = iter(["m1", None, "m2", "m3", "m4", None])

    class NodeState:
        def get_node_id(self) -> int:
            return 7

    def pull(**_: Any) -> str | None:
        pulls.append("pull")
        return next(results)

    module = SimpleNamespace(_pull_and_store_message=pull, time=time)
    clock = fast_node.install_prompt_clock(module, None, woken_as=prefix)

    def pull_now() -> str | None:
        result: str | None = module._pull_and_store_message(state=NodeState())
        return result

    try:
        assert pull_now() == "m1" and len(pulls) == 1  # the first pull is due
        assert clock._woken_by is not None  # listening by its node id from then on
        assert pull_now() is None and len(pulls) == 1  # after the reply: skipped
        fast_node.wake(me)  # a wake-up for a message a pull had taken before it came
        assert pull_now() is None and len(pulls) == 2  # one empty pull
        assert pull_now() is None and len(pulls) == 2
        fast_node.wake(me)  # two messages stored for it while it waits
        fast_node.wake(me)
        clock.sleep(fast_node.FLOWER_IDLE_SLEEP_S)  # Flower's idle wait: back on the wake-ups
        assert pull_now() == "m2" and len(pulls) == 3
        assert pull_now() == "m3" and len(pulls) == 4  # the second one at once, not after a wait
        assert pull_now() is None and len(pulls) == 4
        clock.sleep(fast_node.FLOWER_IDLE_SLEEP_S)  # nobody wakes it: back after the fallback wait
        assert pull_now() == "m4" and len(pulls) == 5  # and pulls anyway (a lost datagram)
    finally:
        if clock._woken_by is not None:
            clock._woken_by.close()
    unwoken = fast_node.PromptClock(RecordingTime())  # type: ignore[arg-type]
    assert all(unwoken.pull_due() for _ in range(3))  # nobody wakes it: every pull Flower makes


def _pull_into_node(stopped: bool) -> tuple[Any, Any]:
    """Flower's own SuperNode receive step (`_pull_and_store_message`, wrapped as the platform
    runs it) on a real in-memory node state, for one train message of a run the node knows."""
    from flwr.app import RecordDict
    from flwr.supercore.constant import TaskType
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects, get_object_tree
    from flwr.supercore.object_store import ObjectStoreFactory
    from flwr.supercore.run import Run, RunNotRunningException
    from flwr.supernode import start_client_internal
    from flwr.supernode.nodestate import NodeStateFactory

    objects = ObjectStoreFactory()
    state = NodeStateFactory(objects).state()
    store = objects.store()
    state.set_node_id(5)
    run = Run.create_empty(42)
    run.primary_task_type = TaskType.CLIENT_APP
    state.store_run(run)
    from flwr.supercore.task_identity import TaskIdentity

    previous = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 42, 1  # as in the ServerApp's task
    try:
        message = Message(content=RecordDict(), dst_node_id=5, message_type="train")
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = previous
    message.metadata.__dict__["_message_id"] = message.object_id
    contents = {k: v.deflate() for k, v in get_all_nested_objects(message).items()}

    def pull_object(_run_id: int, object_id: str) -> bytes:
        if stopped:  # the run was cancelled while the node received its message
            raise RunNotRunningException
        return contents[object_id]

    module = SimpleNamespace(_pull_and_store_message=start_client_internal._pull_and_store_message)
    fast_node.finish_tasks_of_stopped_runs(module)
    run_id = module._pull_and_store_message(
        state=state,
        object_store=store,
        node_config={},
        receive=lambda: (message, get_object_tree(message)),
        get_run=lambda _: run,
        get_fab=lambda *_: None,
        pull_object=pull_object,
        confirm_message_received=lambda *_: None,
        trusted_entities=None,
    )
    return run_id, state


def test_a_message_whose_run_stops_while_it_is_received_leaves_no_task_behind() -> None:
    """flwr 1.42 leaves the task and the message when the run stops during the object pull; a
    long-lived executor then waited minutes on that task and the node's next messages behind it."""
    run_id, state = _pull_into_node(stopped=True)
    assert run_id is None
    assert [(t.status.status, t.status.sub_status) for t in state.get_tasks()] == [("finished", "failed")]
    assert state.get_messages_legacy(is_reply=False) == []
    assert "create_task" not in vars(state)  # the method is Flower's own again


def test_a_message_received_whole_keeps_its_task() -> None:
    run_id, state = _pull_into_node(stopped=False)
    assert run_id == 42
    assert [t.status.status for t in state.get_tasks()] == ["pending"]
    assert len(state.get_messages_legacy(is_reply=False)) == 1


def test_the_executor_falls_back_to_polling_when_nothing_wakes_it() -> None:
    sock = _listener(f"flp-test-{uuid.uuid4().hex}")
    try:
        started = time.monotonic()
        fast_node._wait_for_wake(sock, 0.2)
        assert 0.15 < time.monotonic() - started < 5
    finally:
        sock.close()


@pytest.mark.usefixtures("flower_pull_defaults")
@pytest.mark.parametrize("shorten", [fast_node.shorten_object_pull_backoff, prompt_grid.shorten_object_pull_backoff])
def test_object_pulls_retry_promptly(shorten: Any) -> None:
    assert (inflatable_utils.pull_objects.__kwdefaults__ or {})["initial_backoff"] == 1  # Flower's own, as pinned
    shorten()
    for fn in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        assert fn.__kwdefaults__ is not None
        assert fn.__kwdefaults__["initial_backoff"] == 0.01 and fn.__kwdefaults__["backoff_cap"] == 0.25
        assert fn.__kwdefaults__["max_tries_per_object"] * 0.25 >= 300  # still minutes before giving up


def _reply_to(message_id: str) -> Message:
    return SimpleNamespace(  # type: ignore[return-value]
        metadata=SimpleNamespace(reply_to_message_id=message_id), has_content=lambda: False
    )


class ScriptedGrid:
    """Replies become available at given times after the push."""

    def __init__(self, ready_after: dict[str, float]) -> None:
        self.ready_after = ready_after
        self.pushed_at = 0.0
        self.pulls = 0
        self.run = SimpleNamespace(run_id=random.getrandbits(63))

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self.pushed_at = time.monotonic()
        return list(self.ready_after)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.pulls += 1
        waited = time.monotonic() - self.pushed_at
        return [_reply_to(m) for m in message_ids if self.ready_after[m] <= waited]

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2]


@pytest.mark.usefixtures("flower_pull_defaults")
def test_the_prompt_grid_collects_replies_as_they_come_and_keeps_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(prompt_grid.time, "sleep", sleep)
    monkeypatch.setattr(prompt_grid, "_bind_wake_socket", lambda run_id: None)  # nobody wakes it: it polls
    inner = ScriptedGrid({"a": 0.0, "b": 0.3})
    grid = prompt_grid.PromptGrid(inner)
    assert list(grid.get_node_ids()) == [1, 2] and grid.run is inner.run
    replies = list(grid.send_and_receive([], timeout=30))
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
    assert inner.pulls >= 2 and slept and max(slept) <= prompt_grid.MAX_POLL_S  # Flower's Grid sleeps 3 s

    slept.clear()
    late = prompt_grid.PromptGrid(ScriptedGrid({"a": 0.0, "never": 1e9}))
    started = time.monotonic()
    replies = list(late.send_and_receive([], timeout=0.5))
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]  # whatever came by the deadline
    assert time.monotonic() - started >= 0.5 and max(slept) <= prompt_grid.MAX_POLL_S


def test_the_executor_takes_scikit_learns_first_input_check_once_for_all_its_clientapps() -> None:
    import narwhals.plugins
    from sklearn import model_selection

    narwhals.plugins._discover_entrypoints.cache_clear()
    fast_node._warm_sklearn(model_selection)
    assert narwhals.plugins._discover_entrypoints.cache_info().currsize == 1  # taken at start, not by the first task
    assert (
        "sklearn.model_selection" in fast_node.PRELOAD and "flwr.supernode.runtime.run_clientapp" in fast_node.PRELOAD
    )


WARM_APPS_SCRIPT = """
import hashlib, sys, types
from pathlib import Path
from flwr.cli.build import build_fab_from_disk
from fl_runtime.fast_node import WarmClientApps

def fab(app_dir):
    content = build_fab_from_disk(Path(app_dir))
    return types.SimpleNamespace(content=content, hash_str=hashlib.sha256(content).hexdigest())

run = types.SimpleNamespace(fab_id="flp/flp-flower", fab_version="1.0.0")
first, second = fab(sys.argv[1]), fab(sys.argv[2])
apps = WarmClientApps()
app = apps.load(run, first)
module = sys.modules["flp_flower.client_app"]
print("first", module.app is app, getattr(module, "EDITION", None), Path(module.__file__).parent.parent.name)
print("again", apps.load(run, first) is app)
app_b = apps.load(run, second)
module_b = sys.modules["flp_flower.client_app"]
print("second", module_b.app is app_b, app_b is not app, module_b.EDITION, Path(module_b.__file__).parent.parent.name)
print("path", str(apps.project_dir) in sys.path, sum(first.hash_str[:8] in entry for entry in sys.path))
"""


def test_the_executor_imports_an_app_once_and_a_new_fab_afresh(tmp_path: Path) -> None:
    """One ClientApp process runs many tasks: the same FAB is not installed or imported again, and
    a new FAB whose modules have the same names (an updated app) is imported afresh, not served
    from the old modules."""
    first, second = tmp_path / "first", tmp_path / "second"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(APP_DIR, first, ignore=ignore)
    shutil.copytree(APP_DIR, second, ignore=ignore)
    with (second / "flp_flower" / "client_app.py").open("a") as f:
        f.write('\nEDITION = "updated"\n')
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", WARM_APPS_SCRIPT, str(first), str(second)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    installed = sorted(p.name for p in (tmp_path / "home" / "apps").iterdir())
    assert len(installed) == 2  # one install per FAB
    name_of = {line.split()[0]: line.split()[1:] for line in out}
    assert name_of["first"][:2] == ["True", "None"] and name_of["first"][2] in installed
    assert name_of["again"] == ["True"]
    assert name_of["second"][:3] == ["True", "True", "updated"] and name_of["second"][3] in installed
    assert name_of["second"][3] != name_of["first"][2]
    assert name_of["path"] == ["True", "0"]  # the old FAB's directory left sys.path


def test_preload_imports_torch_single_threaded_without_dynamo() -> None:
    """Every executor and launcher preloads torch with one thread (several SuperNodes share the
    machine) and does not pay for torch._dynamo, which our training never imports."""
    script = (
        "import sys; from fl_runtime.fast_node import preload; "
        "print(preload(('torch',)), 'torch._dynamo' in sys.modules, sys.modules['torch'].get_num_threads())"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["['torch']", "False", "1"]


TASK_SIGNALS_SCENARIO = """
import os, signal, sys, threading, time
from flwr.proto.runtime_pb2 import SendTaskHeartbeatResponse
from fl_runtime.fast_node import TaskSignals, TaskStopped

class TaskOver:  # the SuperNode's answer to a heartbeat of a task it ended
    def SendTaskHeartbeat(self, _request):
        return SendTaskHeartbeatResponse(success=False)

signals = TaskSignals()
signal.signal(signal.SIGINT, signals.on_sigint)

def beat_and_let_the_signal_land():
    beat = threading.Thread(target=signals.heartbeat_fn(TaskOver()))  # as HeartbeatSender's thread
    beat.start()
    beat.join()
    for _ in range(50):
        time.sleep(0.01)

signals.running = False  # the task finished while its heartbeat was in flight
beat_and_let_the_signal_land()
print("between tasks: still up", flush=True)
signals.running = True
try:
    beat_and_let_the_signal_land()
except TaskStopped:
    print("running task: stopped", flush=True)
signals.running = False
os.kill(os.getpid(), signal.SIGINT)  # an operator's Ctrl-C
for _ in range(100):
    time.sleep(0.01)
print("Ctrl-C ignored", flush=True)
"""


def test_a_late_task_heartbeat_stop_does_not_end_the_executor() -> None:
    """Flower's task heartbeat raises SIGINT when the SuperNode says the task is over; when that
    answer lands after the task finished (a ClientApp that fails fast), the long-lived executor
    drops it instead of exiting (it did, and was restarted mid-job). An operator's SIGINT still
    stops it, and a running task is stopped."""
    out = subprocess.run(
        [sys.executable, "-c", TASK_SIGNALS_SCENARIO], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.splitlines() == ["between tasks: still up", "running task: stopped"], out.stderr
    assert out.returncode == 0, out.stderr


def test_a_node_heartbeat_interval_sets_flowers_pace_and_what_it_reports() -> None:
    script = (
        "from fl_runtime import fast_node\n"
        "from flwr.supercore import heartbeat\n"
        "from flwr.supernode import fleet_http_connection\n"
        "fast_node.set_node_heartbeat_interval(12)\n"
        "print(heartbeat.HEARTBEAT_DEFAULT_INTERVAL, fleet_http_connection.HEARTBEAT_DEFAULT_INTERVAL)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["12", "12"], out.stderr
    # shorter than Flower's call timeout would turn its wait between heartbeats negative (a busy loop)
    refused = subprocess.run(
        [sys.executable, "-m", "fl_runtime.fast_node", "supernode", "--heartbeat-interval", "5", "--insecure"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "--heartbeat-interval must be at least 10 s, not 5" in refused.stderr
    assert "Traceback" not in refused.stderr


def _drained(sock: socket.socket) -> bool:
    return not select.select([sock], [], [], 0.05)[0]


def test_the_superlink_wakes_the_nodes_for_a_message_and_the_runs_grid_for_a_reply() -> None:
    """fast_link wraps Flower's in-memory state: a stored message wakes the SuperNode it is for, a
    stored reply the run's ServerApp Grid, by the names they listen on; a refused one nobody."""
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    stores = inspect.getsource(InMemoryLinkState.store_message_and_object_tree)
    assert "self.store_message_res(message)" in stores and "self.store_message_ins(message)" in stores

    class State:  # Flower's two store methods: the message id, or None when refused
        def store_message_ins(self, message: Any) -> str | None:
            return message.metadata.message_id or None

        def store_message_res(self, message: Any) -> str | None:
            return message.metadata.message_id or None

    prefix = f"flp-test-{uuid.uuid4().hex}-node-"
    nodes = [_listener(fast_node.node_wake_address(prefix, node_id)) for node_id in (11, 12)]
    fast_link.wake_on_store(State, prefix)
    inner = ScriptedGrid({"a": 0.0})
    grid = prompt_grid.PromptGrid(inner)
    grid.push_messages([])  # binds the run's socket before the first message goes out
    assert grid._woken_by is not None
    run_id = inner.run.run_id

    def message(message_id: str, node_id: int = 11) -> Any:
        return SimpleNamespace(metadata=SimpleNamespace(message_id=message_id, run_id=run_id, dst_node_id=node_id))

    try:
        assert State().store_message_ins(message("")) is None
        assert all(_drained(node) for node in nodes)
        assert State().store_message_ins(message("m1", node_id=11)) == "m1"
        assert not _drained(nodes[0])  # the node the message is for is woken
        assert _drained(nodes[1])  # and only that one
        assert fast_node._wait_for_wake(nodes[0], 60.0) == 1  # returns on the wake-up, and takes it
        assert _drained(nodes[0])
        assert State().store_message_res(message("")) is None
        assert _drained(grid._woken_by)
        assert State().store_message_res(message("r1")) == "r1"
        assert not _drained(grid._woken_by)  # woken
        grid._wait(60.0)  # returns on the wake-up, and takes it
        assert _drained(grid._woken_by)
    finally:
        for sock in [*nodes, grid._woken_by]:
            sock.close()


def test_a_woken_node_without_a_wake_up_pulls_again_after_its_fallback_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_node, "IDLE_POLL_WOKEN_S", 0.05)
    real = RecordingTime()
    clock = fast_node.PromptClock(real, woken_as=f"flp-test-{uuid.uuid4().hex}-node-")  # type: ignore[arg-type]
    clock.listen(3)
    assert clock._woken_by is not None
    try:
        clock.sleep(fast_node.FLOWER_IDLE_SLEEP_S)  # nothing wakes it: back after the fallback
        clock.sleep(fast_node.FLOWER_REPLY_SLEEP_S)
        assert real.slept == [fast_node.REPLY_POLL_S]  # only the idle wait listens for wake-ups
        first = clock._woken_by
        clock.listen(4)  # the node was given a new id (registered again): listens by that one
        assert clock._woken_by is not first and first.fileno() == -1
    finally:
        clock._woken_by.close()


def test_a_grid_nobody_wakes_polls_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulation's SuperLink and remote ones send no wake-ups: the Grid's socket is bound, but
    it keeps its short backoff until a first wake-up comes."""
    waits: list[float] = []
    real_select = select.select

    def recording_select(r: Any, w: Any, x: Any, timeout: float) -> Any:
        waits.append(timeout)
        return real_select(r, w, x, timeout)

    monkeypatch.setattr(prompt_grid.select, "select", recording_select)
    grid = prompt_grid.PromptGrid(ScriptedGrid({"a": 0.0, "b": 0.3}))
    try:
        replies = list(grid.send_and_receive([], timeout=30))
        assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
        assert grid._woken_by is not None and waits and max(waits) <= prompt_grid.MAX_POLL_S
    finally:
        if grid._woken_by is not None:
            grid._woken_by.close()


def test_a_keyless_supernode_signs_on_p256_which_flowers_superlink_accepts() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    from flwr.supercore.primitives.asymmetric import (
        bytes_to_public_key,
        public_key_to_bytes,
        sign_message,
        uses_nist_ec_curve,
        verify_signature,
    )
    from flwr.supernode import fleet_http_connection

    module = SimpleNamespace(generate_key_pairs=fleet_http_connection.generate_key_pairs)  # type: ignore[attr-defined]
    private_key, _ = module.generate_key_pairs()
    assert isinstance(private_key.curve, ec.SECP384R1)  # flwr 1.42's own choice
    fast_node.sign_with_p256_when_keyless(module)
    private_key, public_key = module.generate_key_pairs()
    assert isinstance(private_key.curve, ec.SECP256R1)
    # what the SuperLink does with the headers of a signed Fleet request (node_auth.authenticate_node)
    sent = bytes_to_public_key(public_key_to_bytes(public_key))
    assert uses_nist_ec_curve(sent)
    stamp = b"2026-12-04T19:00:00.000000+00:00"
    assert verify_signature(sent, stamp, sign_message(private_key, stamp))
    assert not verify_signature(sent, stamp + b"1", sign_message(private_key, stamp))
