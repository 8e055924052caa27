"""A WebSocket server for threads: :func:`serve` and :class:`Server`.

Accepting is :class:`wsio.server.ThreadedServer`'s (it survives running out of
descriptors or threads, refuses past ``max_connections`` with 503); each connection's
thread runs the TLS handshake, then the opening handshake (one :class:`wsio.Upgrader`
for the server, every hook passed through, ``origins=``, a deadline of
``handshake_timeout``), then ``handler(connection)``, then the closing handshake.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from wsio import _connection as shared
from wsio._connection import Options, Response
from wsio._engine.httphead import Option
from wsio.exceptions import ConnectionClosed, HandshakeError
from wsio.handshake import Upgrader
from wsio.server import DEFAULT_MAX_CONNECTIONS, ThreadedServer
from wsio.sync.connection import Connection
from wsio.wsflate import Extension

__all__ = ["Server", "serve"]

log = logging.getLogger("wsio")

_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011


class _Capture(shared.RequestCapture, threading.local):
    """wsio.aio's RequestCapture, one per connection thread (the hooks run in the
    thread whose handshake they parse), with the permessage-deflate negotiation of
    that handshake."""

    def __init__(self) -> None:
        super().__init__()
        self.extension: Extension | None = None


class Server:
    """Serves WebSocket connections on a listening socket, a thread each.

    :meth:`serve_forever` runs the accept loop; :meth:`shutdown` (from another thread,
    or leaving the ``with`` block) stops it and ends every connection with 1001.
    """

    #: The Upgrader the server builds; a subclass may answer a plain HTTP request itself
    #: (``python -m wsio serve`` hands out its page so).
    upgrader_class: type[Upgrader] = Upgrader

    def __init__(
        self,
        handler: Callable[[Connection], object],
        listener: socket.socket,
        options: Options,
        upgrader_options: dict[str, Any],
        *,
        ssl: ssl_module.SSLContext | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.handler = handler
        self.socket = listener
        self.options = options
        self.ssl = ssl
        self._capture = _Capture()
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()
        self.upgrader = self._upgrader(upgrader_options)
        self._threads = ThreadedServer(
            listener, self._serve_one, max_connections=max_connections, logger=log
        )
        _limit_malloc_arenas()

    def _upgrader(self, upgrader_options: dict[str, Any]) -> Upgrader:
        # The hooks the caller gave run as given, wrapped to keep what the Connection
        # reports as its request, and what permessage-deflate agreed.
        capture = self._capture
        negotiate = upgrader_options.pop("negotiate", None)
        compress = self.options.compression == "deflate"

        def negotiate_hook(option: Option) -> Option | None:
            extension = capture.extension
            if extension is not None:
                answer = extension.negotiate(option)
                if answer is not None:
                    return answer
            return None if negotiate is None else negotiate(option)

        return self.upgrader_class(
            negotiate=negotiate_hook if compress or negotiate is not None else None,
            timeout=self.options.handshake_timeout,
            **capture.wrap(upgrader_options),
        )

    # -- the accept loop ------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections until :meth:`shutdown`."""
        self._threads.serve_forever()

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting; end every connection with 1001 (going away) and wait up to
        ``timeout`` (default: ``close_timeout``) for their handlers to finish."""
        if timeout is None:
            timeout = self.options.close_timeout or 10.0
        self._threads.stopping.set()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(ConnectionClosed, OSError):
                connection._send_close(_GOING_AWAY, "server shutdown")
        # The handlers see the closing handshake end (their recv raises
        # ConnectionClosedOK); ThreadedServer closes the rest after the timeout.
        deadline = time.monotonic() + timeout
        for connection in connections:
            connection._closed.wait(max(0.0, deadline - time.monotonic()))
        self._threads.shutdown(max(0.0, deadline - time.monotonic()))

    @property
    def connections(self) -> int:
        """Connections being served now (handshakes included)."""
        return self._threads.connections

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- one connection -------------------------------------------------------------

    def _serve_one(self, sock: socket.socket, address: Any) -> None:
        stream: Any = sock
        options = self.options
        capture = self._capture
        capture.extension = (
            Extension(shared.SERVER_DEFLATE) if options.compression == "deflate" else None
        )
        try:
            if self.ssl is not None:
                stream = _tls_handshake(self.ssl, sock, options.handshake_timeout)
            conn, handshake = self.upgrader.upgrade_conn(stream)
            stream.settimeout(None)
        except (HandshakeError, OSError) as error:
            # Once, without a traceback: a refused client is the peer's problem, and
            # an operator needs to see who and why (a TLS client on a plain port fails
            # the HTTP parse; a plain one on a TLS port, the TLS handshake).
            log.info("%s: handshake failed: %s: %s", address, type(error).__name__, error)
            with contextlib.suppress(OSError):
                stream.close()
            return
        except BaseException:
            # A bug (logged by the server): the TLS socket, if any, is ours to close;
            # the server closes only the plain one it accepted.
            with contextlib.suppress(OSError):
                stream.close()
            raise
        agreed = capture.extension.accepted() if capture.extension is not None else None
        connection = Connection(
            stream,
            shared.new_protocol(False, options, agreed, streaming=True),
            options,
            request=capture.request(),
            response=Response(101, []),
            subprotocol=handshake.subprotocol,
            read_ahead=conn.take_read_ahead(),
        )
        with self._lock:
            self._connections.add(connection)
        try:
            if self._threads.stopping.is_set():
                connection.close(_GOING_AWAY, "server shutdown")
                return
            self.handler(connection)
        except ConnectionClosed:
            pass  # the peer went away: nothing the handler could do
        except Exception:
            log.exception("%s: handler failed", address)
            connection.close(_INTERNAL_ERROR)
        finally:
            connection.close()
            with self._lock:
                self._connections.discard(connection)


def serve(
    handler: Callable[[Connection], object],
    host: str | None = None,
    port: int | None = None,
    *,
    sock: socket.socket | None = None,
    unix_path: str | None = None,
    ssl: ssl_module.SSLContext | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    backlog: int = 128,
    **options: Any,
) -> Server:
    """A :class:`Server` calling ``handler(connection)`` in a thread per connection,
    listening on ``host``:``port``, on the Unix socket ``unix_path``, or on ``sock`` (an
    already listening socket); ``ssl`` makes it ``wss://``. Call ``serve_forever()``.

    Keywords: the connection's options (:class:`wsio._connection.Options`, among them
    ``handshake_timeout`` and ``compression``) and every :class:`wsio.Upgrader` hook
    and limit (``origins``, ``protocol``, ``on_request``, ``on_header``, ...). The
    connection is closed when the handler returns (1000), or raises (1011).
    """
    config, upgrader_options = shared.split_options(options)
    own = sock is None
    if sock is None:
        if unix_path is not None:
            with contextlib.suppress(FileNotFoundError):
                if not os.path.exists(unix_path) or _is_socket(unix_path):
                    os.unlink(unix_path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(unix_path)
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_server((host or "", port or 0), backlog=backlog)
    try:
        return Server(
            handler,
            sock,
            config,
            upgrader_options,
            ssl=ssl,
            max_connections=max_connections,
        )
    except BaseException:
        # Refused options (the Upgrader's are checked here): the socket made for this
        # server is closed, not left to the garbage collector.
        if own:
            sock.close()
        raise


def _tls_handshake(
    context: ssl_module.SSLContext, sock: socket.socket, timeout: float | None
) -> ssl_module.SSLSocket:
    """The server side of the TLS handshake on ``sock``, within ``timeout`` seconds in
    all (a timeout per read would let a client trickling its ClientHello hold the
    thread for ever); TimeoutError past it. The socket keeps what is left of it."""
    stream = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("TLS handshake timed out")
            stream.settimeout(left)
            try:
                stream.do_handshake()
                break
            except (ssl_module.SSLWantReadError, ssl_module.SSLWantWriteError, TimeoutError):
                continue  # more of the peer's bytes are due; the deadline above decides
    except BaseException:
        stream.close()  # it owns the descriptor now
        raise
    # What the opening handshake may take is the rest of the same deadline.
    stream.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
    return stream


def _limit_malloc_arenas() -> None:
    """At most two glibc malloc arenas in this process (once; not if the operator set
    ``MALLOC_ARENA_MAX``; nothing off glibc)."""
    # glibc gives each new thread a malloc arena of its own (up to 8 per core), and each
    # reserves 64 MiB of address space: with a thread per connection, a server under
    # RLIMIT_AS (or a 32-bit one) runs out of address space on arenas long before
    # memory, and then fails inside threads already started. Process-wide, as
    # MALLOC_ARENA_MAX=2 would be: the cause is this server's thread per connection.
    global _arenas_limited
    if _arenas_limited or "MALLOC_ARENA_MAX" in os.environ:
        return
    _arenas_limited = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return  # not glibc
    mallopt(_M_ARENA_MAX, 2)


_M_ARENA_MAX = -8  # glibc's malloc.h
_arenas_limited = False


def _is_socket(path: str) -> bool:
    import stat

    return stat.S_ISSOCK(os.stat(path).st_mode)
