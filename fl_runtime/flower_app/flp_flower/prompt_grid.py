"""A Grid that collects replies as they arrive instead of every 3 s, and packs models on the wire.

Flower 1.42's deployment Grid (`HttpGrid.send_and_receive`) pulls replies from the SuperLink, then
sleeps a fixed 3 s before trying again, so every train and evaluate exchange of a round waits up to
3 s after the last reply came in. This wrapper delegates everything to Flower's Grid and only
replaces that wait with a short poll backing off from 10 ms to 250 ms (same timeout semantics:
whatever replied by the deadline is returned). It is also the ServerApp's edge of the wire format
(`flp_flower.wire`): what it pushes has its ArrayRecords packed, what it pulls has them unpacked.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.proto.node_pb2 import NodeInfo
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from flp_flower.wire import pack, unpack

OBJECT_PULL_BACKOFF = {"initial_backoff": 0.01, "backoff_cap": 0.25, "max_tries_per_object": 2000}
FIRST_POLL_S = 0.01
MAX_POLL_S = 0.25
GROWTH = 1.5
MAX_POLL_WOKEN_S = 1.0  # once the SuperLink has woken the Grid for a reply: polls are only a fallback
RUN_WAKE_PREFIX = "flp-run-"  # + run id; fl_runtime.fast_link.RUN_WAKE_PREFIX


def shorten_object_pull_backoff() -> None:
    """A reply's objects reach the SuperLink just after the reply does, and Flower retries an
    object that is not there yet after 1 s, doubling to 10 s: each round's replies waited 1-3 s
    more. Same retries, promptly (10 ms doubling to 250 ms). The platform's SuperNodes do the same
    (`fl_runtime.fast_node`, which this app cannot import: it runs from its FAB)."""
    from flwr.supercore.inflatable import inflatable_utils

    for fn in (inflatable_utils.pull_objects, inflatable_utils.pull_and_inflate_object_from_tree):
        if fn.__kwdefaults__ is not None:
            fn.__kwdefaults__.update(OBJECT_PULL_BACKOFF)


def _bind_wake_socket(run_id: int) -> socket.socket | None:
    """The datagram socket the platform's SuperLink wakes this run's ServerApp by when a reply
    is stored (`fl_runtime/fast_link.py`, which names it the same way; this app cannot import
    it). None where it cannot be bound (not Linux): the Grid then only polls."""
    try:
        sock = socket.socket(getattr(socket, "AF_UNIX"), socket.SOCK_DGRAM)  # noqa: B009 - not on Windows
    except (AttributeError, OSError):
        return None
    try:
        sock.bind(f"\0{RUN_WAKE_PREFIX}{run_id}")  # a Linux abstract socket: no file to clean up
    except OSError:
        sock.close()
        return None
    return sock


class PromptGrid(Grid):
    def __init__(self, inner: Grid) -> None:
        self.inner = inner
        self._woken_by: socket.socket | None = None
        self._bound = False
        self._woken = False  # a wake-up came: this SuperLink wakes the Grid (the platform's, on one host)
        shorten_object_pull_backoff()

    def _bind(self) -> None:
        """Before the first push: a reply stored before the socket exists would wake nobody."""
        if not self._bound:
            self._bound = True
            run_id = getattr(getattr(self.inner, "run", None), "run_id", None)
            self._woken_by = _bind_wake_socket(run_id) if isinstance(run_id, int) else None

    def _wait(self, seconds: float) -> None:
        """Until a reply is stored (the SuperLink says so) or `seconds` passed."""
        if self._woken_by is None:
            time.sleep(seconds)
            return
        if select.select([self._woken_by], [], [], seconds)[0]:
            self._woken = True
            with contextlib.suppress(BlockingIOError):
                while True:  # one pull for however many replies came
                    self._woken_by.recv(16, socket.MSG_DONTWAIT)

    def set_run(self, run: Run) -> None:
        self.inner.set_run(run)

    @property
    def run(self) -> Run:
        return self.inner.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.inner.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.inner.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.inner.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._bind()
        return self.inner.push_messages([_packed(m) for m in messages])

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        replies = list(self.inner.pull_messages(message_ids))
        for reply in replies:
            if reply.has_content():
                reply.content = unpack(reply.content)
        return replies

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        # until a first wake-up shows that the SuperLink sends them (not simulation's, not a
        # remote one), the Grid polls as it always did
        poll = MAX_POLL_WOKEN_S if self._woken else FIRST_POLL_S
        while pending:
            got = list(self.pull_messages(pending))
            replies.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if not pending:
                break
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wait(min(poll, left))
            else:
                self._wait(poll)
            poll = min(poll * GROWTH, MAX_POLL_WOKEN_S if self._woken else MAX_POLL_S)
        return replies


def _packed(msg: Message) -> Message:
    """A copy of `msg` with its models packed (the caller's message is left untouched)."""
    content = pack(msg.content) if msg.has_content() else None
    if content is None or content is msg.content:  # nothing to pack
        return msg
    meta = msg.metadata
    return Message(
        content=content,
        dst_node_id=meta.dst_node_id,
        message_type=meta.message_type,
        ttl=meta.ttl,
        group_id=meta.group_id,
    )
