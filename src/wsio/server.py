"""Accept loops that survive: running out of descriptors or threads pauses a server, never ends it.

A blocking server accepts, then starts a thread for the connection. Both steps fail under
load or attack: ``accept()`` raises ``EMFILE``/``ENFILE`` (no file descriptor left),
``ENOBUFS``/``ENOMEM`` (no kernel memory), and ``Thread.start()`` raises ``RuntimeError:
can't start new thread``. None of these is the listener's fault, and each passes once
connections end. Here they pause accepting for a while that doubles from 5 ms to 1 s
(what Go's ``net/http`` ``Server.Serve`` does on a temporary ``Accept`` error), the
connections already open keep being served, and the log says so once per episode (at
its start and at its end), not once per attempt.

- :func:`accept`: ``listener.accept()`` that waits out exhaustion instead of raising.
- :class:`ThreadedServer`: the whole loop, a thread per connection, with
  ``max_connections`` and a :meth:`~ThreadedServer.shutdown` that lets each connection
  say goodbye. ``python -m wsio serve`` and the socket examples run on it.
- :class:`ThreadingHTTPServer`: :class:`http.server.ThreadingHTTPServer` with the same
  accept, thread and ``max_connections`` handling, for handlers that call
  :func:`wsio.upgrade_http`.
- :func:`threads_without_signals`: what both use to start a thread that never takes a
  Ctrl-C meant for the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import http.server
import logging
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "Backoff",
    "accept",
    "accept_nowait",
    "refuse_busy",
    "ThreadedServer",
    "ThreadingHTTPServer",
    "threads_without_signals",
]

log = logging.getLogger("wsio.server")

#: Connections served at once before new ones are refused (each costs a thread).
DEFAULT_MAX_CONNECTIONS = 1000

#: The longest :meth:`ThreadedServer.serve_forever` waits in accept() before it looks
#: at pending signal handlers again (socketserver's ``poll_interval``).
_POLL_INTERVAL = 0.5

#: accept() errors that mean "out of resources now", not "the listener is broken".
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept(2) on Linux: "accept() passes already-pending network errors on the new socket
# as an error code from accept() ... the application should detect the network errors
# defined for the protocol after accept() and treat them like EAGAIN by retrying"; and
# ECONNABORTED, a connection reset while it waited in the backlog. One client's error.
_RETRY_AT_ONCE = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNABORTED",
        "ENETDOWN",
        "EPROTO",
        "ENOPROTOOPT",
        "EHOSTDOWN",
        "ENONET",
        "EHOSTUNREACH",
        "EOPNOTSUPP",
        "ENETUNREACH",
    )
    if hasattr(errno, name)
)
# Go's net/http Server.Serve: "if tempDelay == 0 { tempDelay = 5 * time.Millisecond }
# else { tempDelay *= 2 }; if max := 1 * time.Second; tempDelay > max { ... }".
_FIRST_DELAY = 0.005
_MAX_DELAY = 1.0

#: What an over-full server answers before closing: cheap, and clear to HTTP clients.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Connection: close\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n"
)


class Backoff:
    """The delays of one exhaustion episode, logged once when it starts and once when it ends.

    :meth:`failed` returns how long to wait before the next attempt (5 ms doubling to
    1 s); :meth:`succeeded` ends the episode. One Backoff per accept loop, reused.
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self.logger = logger
        #: Failed attempts in the current episode (0 when none is going on).
        self.failures = 0
        self._delay = 0.0

    def failed(self, what: str) -> float:
        """Count one failed attempt (``what`` says why, for the log); return the delay."""
        if self.failures == 0:
            self.logger.warning("%s: pausing new connections until resources free up", what)
        self.failures += 1
        self._delay = min(_MAX_DELAY, self._delay * 2 or _FIRST_DELAY)
        return self._delay

    def succeeded(self) -> None:
        """End the episode, if one is going on (one log line)."""
        if self.failures:
            self.logger.warning("accepting again after %d failed attempts", self.failures)
            self.failures = 0
            self._delay = 0.0


def accept(listener: socket.socket, backoff: Backoff | None = None) -> tuple[socket.socket, Any]:
    """``listener.accept()``, waiting out EMFILE/ENFILE/ENOBUFS/ENOMEM instead of raising.

    While the process or system is out of descriptors or buffers, it sleeps (see
    :class:`Backoff`) and tries again; connections wait in the listen backlog
    meanwhile. A network error of one pending connection (ECONNABORTED, EPROTO, ...) is
    skipped. Any other error (a closed listener) is raised. Pass the loop's
    ``backoff`` to log an episode once across calls.
    """
    backoff = backoff or Backoff()
    while True:
        try:
            pair = listener.accept()
        except OSError as error:
            if error.errno in _RETRY_AT_ONCE:
                continue
            if error.errno not in _EXHAUSTED:
                raise
            time.sleep(backoff.failed(f"accept() failed with {errno.errorcode[error.errno]}"))
            continue
        backoff.succeeded()
        return pair


def accept_nowait(
    listener: socket.socket, backoff: Backoff
) -> tuple[socket.socket, Any] | float | None:
    """One ``accept()`` on a non-blocking listener, for event loops: the new connection;
    None when none is waiting; or, out of descriptors or buffers, the seconds to stop
    watching the listener for (``backoff``'s delay; the episode logged once). A network
    error of one pending connection counts as none waiting; any other error is raised."""
    try:
        pair = listener.accept()
    except (BlockingIOError, InterruptedError):
        return None
    except OSError as error:
        if error.errno in _RETRY_AT_ONCE:
            return None
        if error.errno not in _EXHAUSTED:
            raise
        return backoff.failed(f"accept() failed with {errno.errorcode[error.errno]}")
    backoff.succeeded()
    return pair


def refuse_busy(sock: socket.socket) -> None:
    """Answer ``503 Service Unavailable`` on ``sock`` without blocking, and end our side.

    The caller closes ``sock`` (a server, after :data:`_LINGER` seconds).
    """
    with contextlib.suppress(OSError):
        sock.setblocking(False)
        sock.send(_BUSY)
        sock.shutdown(socket.SHUT_WR)


#: Seconds a refused socket stays open after its answer. Closing it with the request
#: unread would reset the connection, and a reset can discard the 503 before the
#: client reads it; a moment later the request is there to drain.
_LINGER = 1.0
#: Refused sockets kept lingering at most (each is a descriptor).
_MAX_LINGERING = 64


class _Lingering:
    """Refused sockets waiting to be closed without a reset, oldest first."""

    def __init__(self) -> None:
        self._socks: collections.deque[tuple[float, socket.socket]] = collections.deque()
        self._closed = False

    def add(self, sock: socket.socket) -> None:
        self._socks.append((time.monotonic() + _LINGER, sock))
        if self._closed:
            # close() ran in another thread meanwhile (a shutdown racing the accept
            # that refused this one): nothing will sweep again.
            self.close()
            return
        self.sweep()

    def sweep(self) -> None:
        """Close the sockets whose time is up (or the oldest, past the maximum)."""
        now = time.monotonic()
        socks = self._socks
        while socks and (socks[0][0] <= now or len(socks) > _MAX_LINGERING):
            sock = socks.popleft()[1]
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                sock.recv(65536)  # what the client sent, so the close sends no reset
            sock.close()

    def close(self) -> None:
        """Close every lingering socket now, and any added later."""
        self._closed = True
        while True:
            try:  # the accepting thread may be closing them too (add)
                sock = self._socks.popleft()[1]
            except IndexError:
                return
            sock.close()


class ThreadedServer:
    """Accepts on ``listener`` and runs ``handler(sock, address)`` in a thread each.

    The handler owns the socket while it runs; it is closed after. Exhaustion of
    descriptors or threads pauses accepting (see the module); past
    ``max_connections`` open at once a new connection gets ``refuse(sock)`` (by
    default :func:`refuse_busy`, a 503) in the accepting thread, which must not block;
    the server closes it a moment later.
    Threads are daemons: a process that ends does not wait for a stuck connection.
    They start with the asynchronous signals blocked, so a Ctrl-C reaches the thread
    that accepts (CPython runs signal handlers there alone). An exception from
    ``handler`` is logged, never raised.
    """

    def __init__(
        self,
        listener: socket.socket,
        handler: Callable[[socket.socket, Any], object],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        refuse: Callable[[socket.socket], object] = refuse_busy,
        logger: logging.Logger = log,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        self.listener = listener
        self.handler = handler
        self.max_connections = max_connections
        self.refuse = refuse
        self.logger = logger
        #: Set by :meth:`shutdown`: handlers that see end of stream check it to say 1001.
        self.stopping = threading.Event()
        # Two episodes, logged apart: accept() running out, and threads running out.
        self._backoff = Backoff(logger)
        self._thread_backoff = Backoff(logger)
        self._full = False
        self._lingering = _Lingering()
        self._lock = threading.Lock()
        self._open: dict[threading.Thread, socket.socket] = {}

    @property
    def connections(self) -> int:
        """Connections being served now."""
        return len(self._open)

    def serve_forever(self) -> None:
        """Accept and start connections until :meth:`shutdown` (or the listener fails).

        A signal handler's exception (Ctrl-C's KeyboardInterrupt) raises out of it within
        half a second, even when no client comes.
        """
        # CPython runs a Python signal handler between bytecodes of the main thread. A
        # signal that arrives after the last such check before accept(2), or that the
        # kernel hands to another thread (one of the application's own), interrupts no
        # system call: a blocking accept() would sleep on with the handler pending until
        # the next client. So each wait is bounded, as socketserver's is.
        self.listener.settimeout(_POLL_INTERVAL)
        while not self.stopping.is_set():
            try:
                sock, address = accept(self.listener, self._backoff)
            except TimeoutError:  # nobody came: the handlers run, the refused close
                self._lingering.sweep()
                continue
            except OSError:
                if self.stopping.is_set():
                    return
                raise
            if self.stopping.is_set():  # accepted while shutdown() ran: nobody serves it
                sock.close()
                return
            self._start(sock, address)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop accepting; end every connection's reads; wait ``timeout`` s for them in all.

        Each handler blocked in a read sees end of stream with :attr:`stopping` set and
        may send its goodbye (RFC 6455 §7.4.1 1001, "going away"). Connections still
        open after ``timeout`` are shut down both ways.
        """
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes an accept() in another thread
        self.listener.close()
        self._lingering.close()
        with self._lock:
            open_now = list(self._open.items())
        for _, sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for thread, sock in open_now:
            if thread.ident is None:  # interrupted between accept() and start()
                sock.close()
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _start(self, sock: socket.socket, address: Any) -> None:
        with self._lock:
            full = len(self._open) >= self.max_connections
            if not full:
                thread = threading.Thread(
                    target=self._run, args=(sock, address), name=_name(address), daemon=True
                )
                self._open[thread] = sock
        if full:
            if not self._full:
                self.logger.warning("%d connections open: refusing more", self.max_connections)
                self._full = True
            try:
                self.refuse(sock)
            except Exception:
                sock.close()
                self.logger.exception("%s: refusing failed", _name(address))
                return
            self._lingering.add(sock)
            return
        self._lingering.sweep()
        if self._full:
            self.logger.warning("below %d connections: accepting again", self.max_connections)
            self._full = False
        try:
            with threads_without_signals():
                thread.start()
        except RuntimeError as error:  # "can't start new thread"
            with self._lock:
                del self._open[thread]
            sock.close()
            time.sleep(self._thread_backoff.failed(f"starting a thread failed ({error})"))
            return
        self._thread_backoff.succeeded()

    def _run(self, sock: socket.socket, address: Any) -> None:
        try:
            self.handler(sock, address)
        except Exception:  # a bug must not go unseen, nor take the server down
            self.logger.exception("%s: unexpected error", _name(address))
        finally:
            sock.close()  # after the log line: whoever sees the close can read it
            with self._lock:
                self._open.pop(threading.current_thread(), None)


class ThreadingHTTPServer(http.server.ThreadingHTTPServer):
    """:class:`http.server.ThreadingHTTPServer` that survives running out of descriptors
    or threads (see the module), with daemon threads and ``max_connections``.

    The standard one retries a failing ``accept()`` at once, spinning a core while the
    process is out of descriptors, and prints a traceback for every thread it cannot
    start. Over ``max_connections`` a request is answered 503 and closed.
    """

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops connections at the first burst

    def __init__(
        self,
        server_address: tuple[str, int],
        handler_class: Callable[..., socketserver.BaseRequestHandler],
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.max_connections = max_connections
        self._backoff = Backoff()
        self._thread_backoff = Backoff()
        self._count_lock = threading.Lock()
        self._count = 0
        self._lingering = _Lingering()
        super().__init__(server_address, handler_class)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept one connection, waiting out exhaustion (:func:`accept`)."""
        return accept(self.socket, self._backoff)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the request's thread; refuse it when full or out of threads."""
        with self._count_lock:
            full = self._count >= self.max_connections
            if not full:
                self._count += 1
        if full:
            refuse_busy(request)
            self._lingering.add(request)
            return
        self._lingering.sweep()
        try:
            with threads_without_signals():
                super().process_request(request, client_address)
        except RuntimeError as error:  # "can't start new thread"
            self._done()
            self.shutdown_request(request)
            time.sleep(self._thread_backoff.failed(f"starting a thread failed ({error})"))
            return
        self._thread_backoff.succeeded()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve the request in its thread, then count it as done."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def server_close(self) -> None:
        """Close the listening socket and the refused sockets still lingering."""
        super().server_close()
        self._lingering.close()

    def _done(self) -> None:
        with self._count_lock:
            self._count -= 1


# CPython runs signal handlers in the main thread only, but the kernel may hand a signal
# sent to the process to any thread that does not block it: given to a connection's
# thread, a Ctrl-C would wait in the main thread's accept() until the next client came.
# So each connection's thread starts with the asynchronous signals blocked (a thread
# inherits its creator's mask) and the kernel delivers them to the thread that accepts.
# The synchronous ones (a fault in the thread itself) and faulthandler's stay open.
_SYNCHRONOUS = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGABRT"}
_ASYNCHRONOUS = (
    frozenset(s for s in signal.valid_signals() if getattr(s, "name", "") not in _SYNCHRONOUS)
    if hasattr(signal, "pthread_sigmask")
    else frozenset()
)


@contextlib.contextmanager
def threads_without_signals() -> Iterator[None]:
    """Threads started in the block have the asynchronous signals (SIGINT, SIGTERM, ...)
    blocked, so the kernel hands those to a thread that Python can run handlers in."""
    if not _ASYNCHRONOUS:  # Windows: no per-thread signal masks
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNCHRONOUS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _name(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) or "unix"
