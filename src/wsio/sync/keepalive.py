"""One keepalive thread per process for every :class:`wsio.sync.Connection`.

A thread per connection for its pings cost a stack and, under glibc, a malloc arena
each; one scheduler thread does the same work for all of them: it sends each
connection's keepalive ping when due, fails a connection whose pong is late (1011), and
reads what arrives on a connection nobody is reading (pongs, and messages into its
queue up to ``max_queue``) through one selector. A connection is watched by the
selector only while that reading is possible: once an application thread is reading it
(or its queue is full), it leaves the selector until its next keepalive tick.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from typing import Any

from wsio.server import threads_without_signals

__all__ = ["schedule"]

log = logging.getLogger("wsio")


class _Scheduler:
    """The keepalive thread: a heap of (when, connection) and a selector. Only that
    thread touches the heap and the selector; other threads hand it connections."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._new: list[Any] = []
        self._thread: threading.Thread | None = None
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._selector = selectors.DefaultSelector()
        self._wake_in, self._wake_out = socket.socketpair()
        self._wake_in.setblocking(False)
        self._wake_out.setblocking(False)
        self._selector.register(self._wake_in, selectors.EVENT_READ, None)

    def add(self, connection: Any) -> None:
        """Keep ``connection`` alive from now on, until it closes."""
        with self._lock:
            self._new.append(connection)
            if self._thread is None or not self._thread.is_alive():
                # Started on first use (and again after a fork, where it is gone).
                self._thread = threading.Thread(
                    target=self._run, name="wsio-keepalive", daemon=True
                )
                with threads_without_signals():  # Ctrl-C is the main thread's
                    self._thread.start()
        with contextlib.suppress(OSError):  # full: a wake-up is already pending
            self._wake_out.send(b"\0")

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._lock:
                new, self._new = self._new, []
            for connection in new:
                self._push(connection, connection._pings.next_deadline())
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                connection = heapq.heappop(heap)[2]
                try:
                    wake = connection._keepalive(now)
                except Exception:  # a bug must not go unseen, nor stop the others
                    log.exception("%s: keepalive failed", connection.remote_address)
                    wake = None
                self._push(connection, wake)
            timeout = max(0.0, heap[0][0] - time.monotonic()) if heap else None
            for key, _ in self._selector.select(timeout):
                connection = key.data
                if connection is None:
                    with contextlib.suppress(OSError):
                        self._wake_in.recv(4096)
                elif not connection._drain() or connection._closed.is_set():
                    # Someone reads it (or its queue is full): until its next tick.
                    self._unwatch(connection)

    def _push(self, connection: Any, wake: float | None) -> None:
        if wake is None or connection._closed.is_set():
            self._unwatch(connection)
            return
        heapq.heappush(self._heap, (wake, next(self._order), connection))
        self._watch(connection)

    def _watch(self, connection: Any) -> None:
        selector = self._selector
        sock = connection.socket
        try:
            key = selector.get_map().get(sock.fileno())
            if key is not None:
                if key.data is connection:
                    return
                # A closed connection's descriptor, reused: the old entry is stale.
                selector.unregister(key.fileobj)
            selector.register(sock, selectors.EVENT_READ, connection)
        except (OSError, ValueError, KeyError):
            pass  # closed meanwhile: its next tick ends it

    def _unwatch(self, connection: Any) -> None:
        with contextlib.suppress(OSError, ValueError, KeyError):
            self._selector.unregister(connection.socket)


_scheduler = _Scheduler()


def schedule(connection: Any) -> None:
    """Send ``connection``'s keepalive pings and read it while nobody does, from the
    process's one keepalive thread."""
    _scheduler.add(connection)
