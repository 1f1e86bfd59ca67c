"""The deployment engine's zygote on its own: real processes forked from a real zygote."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from config.ports import free_port
from fl_runtime.processes import owned_pids, session_members
from fl_runtime.zygote import ForkedProcess, ZygoteProcess


def until(check: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZygoteProcess]:
    root = tmp_path_factory.mktemp("zygote")
    proc = ZygoteProcess("zygote", dict(os.environ), root / "zygote.log", cwd=root)
    proc.start()
    yield proc
    proc.stop()


def executor(zygote: ZygoteProcess, tmp_path: Path, name: str) -> ForkedProcess:
    """A ClientApp executor whose SuperNode never comes: it stays up, waiting for its listener."""
    argv = [sys.executable, "-m", "fl_runtime.fast_node", "executor", "--runtime-api-address"]
    argv.append(f"127.0.0.1:{free_port('127.0.0.1')}")
    return ForkedProcess(name, argv, dict(os.environ), tmp_path / f"{name}.log", tmp_path, zygote)


def test_a_forked_process_runs_the_module_in_its_own_session_with_the_preloads(
    zygote: ZygoteProcess, tmp_path: Path
) -> None:
    proc = executor(zygote, tmp_path, "clientapps-0")
    proc.start()
    try:
        assert proc.pid is not None and proc.running()
        assert psutil.Process(proc.pid).ppid() == zygote.pid
        assert os.getsid(proc.pid) == proc.pid  # its own session: its tree can be signalled
        assert psutil.Process(proc.pid).name() == "clientapps-0"  # in ps and top, not "python"
        assert psutil.Process(proc.pid).cwd() == str(tmp_path)
        # main(argv) ran, logging to its own file, with torch already imported by the zygote
        assert until(lambda: "ClientApp executor for 127.0.0.1:" in proc.log_file.read_text())
        assert "preloaded numpy, torch, sklearn" in proc.log_file.read_text()
        assert proc.tree() == [proc.pid]
        assert proc.pid in owned_pids(zygote.owner)  # found by the zygote's marker, e.g. as a leftover
    finally:
        proc.stop()
    assert not proc.running() and session_members(proc.pid) == []


def test_a_restarted_zygote_leaves_its_children_running_and_forks_again(zygote: ZygoteProcess, tmp_path: Path) -> None:
    first = executor(zygote, tmp_path, "clientapps-0")
    first.start()
    try:
        old_zygote = zygote.pid
        assert old_zygote is not None
        os.kill(old_zygote, signal.SIGKILL)
        assert until(lambda: not zygote.running())
        assert first.running()
        with pytest.raises(RuntimeError, match="zygote is not running"):
            executor(zygote, tmp_path, "clientapps-1").start()
        zygote.restart()  # what the engine's health check does
        assert zygote.pid != old_zygote and first.running()
        assert zygote.reap_orphans() == [] and first.running()  # the engine's sweep after each run
        second = executor(zygote, tmp_path, "clientapps-1")
        second.start()
        try:
            assert second.running() and psutil.Process(second.pid or 0).ppid() == zygote.pid
            first.restart()  # forked again, by the new zygote
            assert first.running() and psutil.Process(first.pid or 0).ppid() == zygote.pid
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_child_that_exits_is_seen_as_down_with_its_reason_in_its_log(zygote: ZygoteProcess, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "fl_runtime.fast_node", "supernode", "--heartbeat-interval", "5"]
    proc = ForkedProcess("supernode-0", argv, dict(os.environ), tmp_path / "supernode-0.log", tmp_path, zygote)
    proc.start()
    assert until(lambda: not proc.running())  # exited, and reaped by the zygote (no zombie)
    assert "--heartbeat-interval must be at least 10 s, not 5" in proc.log_file.read_text()
    assert zygote.running()


def test_the_zygote_forks_only_the_platforms_flower_modules(zygote: ZygoteProcess, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not a module the zygote serves: 'os'"):
        zygote.fork("os", [], dict(os.environ), tmp_path, tmp_path / "x.log")
    with pytest.raises(ValueError, match="forks `python -m MODULE"):
        ForkedProcess("x", ["/bin/true"], {}, tmp_path / "x.log", tmp_path, zygote)
    assert zygote.running()


def _ask(zygote: ZygoteProcess, payload: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect("\0" + zygote.listen)
        sock.sendall(payload + b"\n")
        answer: dict[str, object] = json.loads(sock.makefile("rb").readline())
        return answer


def test_the_zygote_forks_only_for_its_engine_and_survives_bad_requests(zygote: ZygoteProcess, tmp_path: Path) -> None:
    assert _ask(zygote, b"[1, 2]") == {"error": "a request is a JSON object"}
    assert _ask(zygote, b"not json")["error"]
    request = {"module": "fl_runtime.fast_node", "argv": "executor", "env": {}, "cwd": "/", "log": "/dev/null"}
    assert _ask(zygote, json.dumps(request).encode()) == {"error": "'argv' missing or not a list"}
    # an abstract socket has no file permissions: another process on the host asks in vain
    request["argv"] = ["executor", "--runtime-api-address", "127.0.0.1:1"]
    script = (
        "import json, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect('\\0' + sys.argv[1])\n"
        "s.sendall(sys.argv[2].encode() + b'\\n'); print(s.makefile('rb').readline().decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, zygote.listen, json.dumps(request)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip(), (out.returncode, out.stdout, out.stderr)
    assert json.loads(out.stdout) == {"error": "only the engine that started this zygote may use it"}, out.stderr
    assert zygote.running()
