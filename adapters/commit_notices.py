"""Commit notices between the processes that share one SQLite file (replicas on one data dir).

SQLite tells no other process that a file changed (its update and commit hooks are per
connection), and polling `PRAGMA data_version` fast enough for read-your-writes would wake every
process hundreds of times a second for nothing. So each open store binds a Unix datagram socket
in a directory named after the file and, after each commit, sends the value it committed (a
position) to the other sockets there: a few microseconds per peer, nothing at all without peers.
The directory is in the temporary directory, not beside the file: a socket's path must be short
(108 bytes on Linux), and processes that share a file on one machine share that directory.
Written by hand because no library does this for SQLite; where Unix datagram sockets are
missing, or the directory is not this user's own, the stores keep to their timed re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class CommitNotices:
    """`listen` on the event loop (the callback gets the highest value received in a burst);
    `send` from the thread that committed."""

    def __init__(self, db_path: Path) -> None:
        named = hashlib.sha256(os.fsencode(os.path.realpath(db_path))).hexdigest()[:20]
        self.dir = Path(tempfile.gettempdir()) / f"flp-notices-{named}"
        self._own: str | None = None
        self._inbox: socket.socket | None = None
        self._outbox: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._listing: int | None = None  # the directory's mtime when `_peers` was listed

    def listen(self, loop: asyncio.AbstractEventLoop, on_notice: Callable[[int], None]) -> bool:
        """Bind this store's socket; False (and the caller keeps its timed re-reads) if impossible."""
        if not hasattr(socket, "AF_UNIX"):
            return False
        own = str(self.dir / f"{uuid.uuid4().hex[:12]}.sock")
        if len(os.fsencode(own)) > MAX_SOCKET_PATH:
            log.info("commit notices off: %s is too long for a socket path", own)
            return False
        inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._bind(inbox, own)
        except OSError as exc:
            inbox.close()
            outbox.close()
            log.info("commit notices off: %s", exc)
            return False
        inbox.setblocking(False)
        outbox.setblocking(False)
        self._own, self._inbox, self._outbox, self._loop = own, inbox, outbox, loop

        def receive() -> None:
            highest = -1
            while True:
                try:
                    data = inbox.recv(16)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    return
                if len(data) == 8:
                    highest = max(highest, int.from_bytes(data, "big"))
            if highest >= 0:
                on_notice(highest)

        loop.add_reader(inbox.fileno(), receive)
        return True

    def _bind(self, inbox: socket.socket, own: str) -> None:
        for attempt in (1, 2):  # the directory may be removed meanwhile by the last store closing
            self.dir.mkdir(mode=0o700, exist_ok=True)
            if self.dir.stat().st_uid != os.getuid():
                raise PermissionError(f"{self.dir} belongs to another user")
            try:
                inbox.bind(own)
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def send(self, value: int) -> None:
        """Tell every other open store on this file; a peer that is gone is forgotten."""
        outbox = self._outbox
        if outbox is None:
            return
        try:
            listed = os.stat(self.dir).st_mtime_ns  # a socket bound or removed changes it
        except OSError:
            return
        if listed != self._listing:
            self._listing = listed
            with contextlib.suppress(OSError):
                self._peers = [e.path for e in os.scandir(self.dir) if e.path != self._own]
        data = value.to_bytes(8, "big")
        for peer in self._peers:
            try:
                outbox.sendto(data, peer)
            except BlockingIOError:
                pass  # its inbox is full: it has notices to read already
            except ConnectionRefusedError:  # nothing bound there: a process killed before closing
                with contextlib.suppress(OSError):
                    os.unlink(peer)
            except OSError:
                pass

    def close(self) -> None:
        if self._inbox is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._inbox.fileno())
            self._inbox.close()
            self._inbox = None
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None
        if self._own is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._own)
                os.rmdir(self.dir)  # the last one out (a store binding meanwhile tries again)
            self._own = None
