"""The server side of the opening handshake (RFC 6455 §4.2): :class:`Upgrader` and friends.

Three ways in, one set of checks (the engine's :class:`~wsio._engine.handshake.ServerRules`,
which :class:`Upgrader` extends):

- :meth:`Upgrader.upgrade` on a raw connected socket (the zero-copy path: the request
  head is read into a pooled buffer and parsed in place; hooks get views of it).
- :func:`upgrade_http` from inside :mod:`http.server` (a handler's ``do_GET`` calls it),
  the counterpart of gobwas/ws's ``UpgradeHTTP``. Subclass :class:`UpgradeRequestHandler`
  instead of ``BaseHTTPRequestHandler``: it reads the request head with the Upgrader's
  parser, limits and deadline, so that http.server's own lenient parser (obs-fold, bare
  CR, megabytes of headers) never sees it. With a plain ``BaseHTTPRequestHandler`` the
  same rules are checked again on what http.server parsed, after it spent the work.
- :func:`check_request` + :func:`build_response` / :func:`build_rejection` for servers
  that parse HTTP themselves.

Every refusal is answered on the wire first and then raised to the caller as
:class:`~wsio.RejectConnectionError` with its ``status``:

=====  ==============================================================================
505    HTTP major version not 1, or below 1.1
405    not GET (with ``Allow: GET``)
400    a missing or bad Host, Upgrade, Connection or Sec-WebSocket-Key; a missing
       Sec-WebSocket-Version; a duplicated Host, Sec-WebSocket-Key or -Version;
       malformed Sec-WebSocket-Protocol or -Extensions; a request body (announced by
       Transfer-Encoding or a non-zero Content-Length); malformed HTTP (obs-fold,
       control characters, whitespace before a colon, ...)
403    ``origins`` is set and the Origin header is not in it (or appears twice)
426    a Sec-WebSocket-Version other than 13 (with ``Sec-WebSocket-Version: 13``)
414    a request line over ``max_line``
431    a header line over ``max_line``, more than ``max_headers`` headers, or a head
       over ``max_head_size``
=====  ==============================================================================

A hook that raises RejectConnectionError answers with its status, reason (the
text/plain body) and headers; any other exception from a hook answers 500 with a
generic body and is chained as the ``__cause__`` of the RejectConnectionError raised.
No exception text other than a rejection's own reason ever reaches the peer.

**Cross-site WebSocket hijacking.** A browser opens a WebSocket to any site a page asks
for and attaches that site's cookies; no same-origin policy or CORS applies to the
handshake. A server that trusts cookies (or the client's network position) must check
``Origin``: pass ``origins=["https://app.example.com"]`` to refuse other origins with
403. Entries match the whole origin exactly (ASCII case ignored), never a prefix or a
suffix; ``None`` in the list admits a request without Origin (non-browser clients,
which can also send any Origin they like: this protects browser users, it is not
authentication); ``"null"`` (sandboxed frames, ``file:`` pages) only if listed.

**Deadline.** The whole handshake — reading the request, checking it, writing the
answer — must finish within ``timeout`` seconds (``DEFAULT_HANDSHAKE_TIMEOUT``, 10 s, by
default everywhere; ``None`` turns it off): a peer dripping one byte a second is cut
off at the deadline with :class:`~wsio.HandshakeTimeoutError`, not after a timeout per
read. The socket's own timeout is restored afterwards. Streams without ``settimeout``
(file-like objects) are not timed. The Upgrader never closes the connection, even after
a rejection or a timeout: the caller does.

The checks themselves have no I/O (:class:`~wsio._engine.handshake.ServerHandshake`):
an event loop feeds the same object from ``data_received``.
"""

from __future__ import annotations

import functools
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol

from wsio._engine.handshake import (
    ACCEPTED,
    NEED_DATA,
    Accepted,
    Handshake,
    HeadersLike,
    ServerHandshake,
    ServerRules,
    View,
    build_rejection,
    build_response,
    encode_headers,
)
from wsio._engine.http import HeadError, RequestParser
from wsio._engine.httphead import (
    ABSENT,
    HeaderSyntaxError,
    Option,
    accept_key,
    format_options,
    has_token,
    is_valid_key,
    parse_options,
    parse_tokens,
    scan_cookies,
)
from wsio._engine.limits import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_LINE,
)
from wsio.conn import Conn
from wsio.exceptions import (
    HandshakeTimeoutError,
    IncompleteHandshakeError,
    RejectConnectionError,
)

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SERVER_READ_BUFFER_SIZE",
    "Accepted",
    "DebugUpgrader",
    "Handshake",
    "HeadersLike",
    "UpgradeRequestHandler",
    "Upgrader",
    "build_rejection",
    "build_response",
    "check_request",
    "encode_headers",
    "upgrade",
    "upgrade_conn",
    "upgrade_http",
    # gobwas/httphead's part, for hooks: header values in, options and cookies out.
    "ABSENT",
    "HeaderSyntaxError",
    "Option",
    "accept_key",
    "format_options",
    "has_token",
    "is_valid_key",
    "parse_options",
    "parse_tokens",
    "scan_cookies",
]

#: Bytes asked of the socket per read while the request head arrives.
DEFAULT_SERVER_READ_BUFFER_SIZE = 4096

_PEER_LEFT = "the peer closed the connection during the handshake"
_TIMED_OUT = "the opening handshake timed out"


class Upgrader(ServerRules):
    """Checks opening-handshake requests and answers them (gobwas/ws ``Upgrader``).

    Every hook is optional and may raise :class:`~wsio.RejectConnectionError` to refuse
    with its status, reason and headers; any other exception refuses with 500. Byte
    arguments (``uri``, ``host``, ``key``, ``value``) are ``memoryview`` slices of the
    read buffer, **valid only until the hook returns**: copy (``bytes(value)``) what you
    keep. With ``hook_bytes=True`` they are ``bytes`` instead.

    - ``on_request(uri)`` after the request line, when method and version are acceptable.
    - ``on_host(host)`` with the Host value.
    - ``on_header(key, value)`` for every header that is not Host, Upgrade, Connection or
      ``Sec-WebSocket-*``; ``key`` is canonicalised in place (``Sec-Fetch-Mode``, ``Cookie``).
    - ``on_before_upgrade()`` last; returns extra headers for the 101 response (or None).
    - ``protocol``: the subprotocols this server speaks (a sequence), or a predicate
      called with each offered one, in the client's order; the first match is selected.
    - ``protocol_custom(raw)``: given the raw Sec-WebSocket-Protocol value (all such
      headers joined with ", "), returns the subprotocol or None; overrides ``protocol``.
    - ``negotiate(option)``: called per offered extension, in order; return the
      :class:`Option` to accept (appended to the response) or None to decline.
    - ``header``: extra headers sent with every response, success or refusal.
    - ``origins``: the origins allowed to connect, e.g. ``["https://app.example.com"]``
      (exact match, ASCII case ignored; ``None`` in the list admits a request without an
      Origin header); any other Origin is refused with 403. The default, None, checks
      nothing: set it on any server a browser can reach whose clients hold cookies or
      sit on a private network, or a page on any site can use their credentials
      (cross-site WebSocket hijacking, CWE-1385). Origin also goes to ``on_header``.
    - ``max_line``, ``max_headers``, ``max_head_size``: request-head limits (414/431).
    - ``read_buffer_size``: bytes asked of the socket per read.
    - ``timeout``: seconds for the whole handshake (reading, checking, answering); the
      socket's timeout is set to what is left before each read and write, and restored
      afterwards. Running out raises HandshakeTimeoutError. None: no deadline.

    An Upgrader is immutable after construction and safe to share between threads.
    """

    def __init__(
        self,
        *,
        on_request: Callable[[View], object] | None = None,
        on_host: Callable[[View], object] | None = None,
        on_header: Callable[[View, View], object] | None = None,
        on_before_upgrade: Callable[[], HeadersLike | None] | None = None,
        protocol: Sequence[str] | Callable[[str], bool] | None = None,
        protocol_custom: Callable[[str], str | None] | None = None,
        negotiate: Callable[[Option], Option | None] | None = None,
        header: HeadersLike | None = None,
        origins: Iterable[str | None] | None = None,
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        read_buffer_size: int = DEFAULT_SERVER_READ_BUFFER_SIZE,
        timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        hook_bytes: bool = False,
    ) -> None:
        super().__init__(
            on_request=on_request,
            on_host=on_host,
            on_header=on_header,
            on_before_upgrade=on_before_upgrade,
            protocol=protocol,
            protocol_custom=protocol_custom,
            negotiate=negotiate,
            header=header,
            origins=origins,
            max_line=max_line,
            max_headers=max_headers,
            max_head_size=max_head_size,
            hook_bytes=hook_bytes,
        )
        if read_buffer_size < 1:
            raise ValueError("Upgrader limits are too small")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be positive, or None for no deadline")
        self.read_buffer_size = read_buffer_size
        self.timeout = timeout
        self._pool: list[RequestParser] = []
        self._lock = threading.Lock()

    def upgrade(self, conn: Any) -> Handshake:
        """Read the request from ``conn``, check it, answer it; return the Handshake.

        ``conn`` is a connected socket, an ``ssl.SSLSocket``, a :class:`wsio.Conn` or a
        binary file-like stream (``readinto`` + ``write``). On a plain socket the head is
        peeked, so bytes after it stay in the socket; elsewhere they end up in
        ``Handshake.read_ahead`` (a view of the head buffer: copy it to keep it long). A
        TCP socket gets TCP_NODELAY, as Go sets on every TCP connection. Raises
        RejectConnectionError after answering a refusal, IncompleteHandshakeError if the
        peer left first, HandshakeTimeoutError at the deadline, or OSError.
        """
        parser = self._take_parser()
        try:
            result = _exchange(
                conn, ServerHandshake(self, parser), self.timeout, self.read_buffer_size
            )
        except BaseException:
            self._give_parser(parser)
            raise
        if not result.read_ahead:
            # A read-ahead view keeps the buffer; otherwise it serves the next request.
            self._give_parser(parser)
        return result

    def upgrade_conn(self, conn: Any) -> tuple[Conn, Handshake]:
        """Like :meth:`upgrade`, returning a :class:`wsio.Conn` that reads any read-ahead first."""
        return _with_conn(conn, self.upgrade(conn))

    def _take_parser(self) -> RequestParser:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self.new_parser()

    def _give_parser(self, parser: RequestParser) -> None:
        parser.reset()
        with self._lock:
            if len(self._pool) < 16:
                self._pool.append(parser)


class DebugUpgrader:
    """An :class:`Upgrader` that shows the raw handshake bytes (gobwas/ws ``DebugUpgrader``).

    ``on_request(raw)`` gets the request head exactly as received (up to the empty line),
    ``on_response(raw)`` the response about to be sent, refusals included.
    """

    def __init__(
        self,
        upgrader: Upgrader | None = None,
        *,
        on_request: Callable[[bytes], object] | None = None,
        on_response: Callable[[bytes], object] | None = None,
    ) -> None:
        self.upgrader = upgrader if upgrader is not None else Upgrader()
        self.on_request = on_request
        self.on_response = on_response

    def upgrade(self, conn: Any) -> Handshake:
        """:meth:`Upgrader.upgrade`, calling the debug hooks with the raw bytes."""
        on_request = self.on_request
        handshake = ServerHandshake(
            self.upgrader,
            on_head=None if on_request is None else (lambda head: on_request(bytes(head))),
        )
        upgrader = self.upgrader
        return _exchange(
            conn, handshake, upgrader.timeout, upgrader.read_buffer_size, self.on_response
        )

    def upgrade_conn(self, conn: Any) -> tuple[Conn, Handshake]:
        """:meth:`Upgrader.upgrade_conn`, calling the debug hooks with the raw bytes."""
        return _with_conn(conn, self.upgrade(conn))


# -- driving the handshake over a blocking stream --------------------------------------


class _Peekable(Protocol):
    def recv_into(self, buffer: Any, nbytes: int = ..., flags: int = ..., /) -> int: ...


def _exchange(
    conn: Any,
    handshake: ServerHandshake,
    timeout: float | None,
    read_size: int = DEFAULT_SERVER_READ_BUFFER_SIZE,
    on_response: Callable[[bytes], object] | None = None,
) -> Handshake:
    """Run ``handshake`` over the blocking stream ``conn`` within ``timeout`` seconds.

    The I/O half of :meth:`Upgrader.upgrade` (see there): reads into the handshake's
    buffer until it decides, sends the answer, returns the result or raises.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    settimeout = getattr(conn, "settimeout", None) if deadline is not None else None
    previous = conn.gettimeout() if settimeout is not None else None
    sock = _peekable(conn)
    readinto = getattr(conn, "recv_into", None)
    first = True
    try:
        while handshake.state == NEED_DATA:
            free = handshake.get_buffer(read_size)
            if settimeout is not None:
                # The whole budget for the first read (one call less when the head comes
                # in one piece, as it nearly always does); what is left for later reads.
                settimeout(timeout if first else _remaining(deadline))
                first = False
            if sock is not None:
                # Peek, so that what follows the head stays in the socket; then consume
                # exactly the bytes the head took (this blocks: no busy loop).
                n = sock.recv_into(free, len(free), socket.MSG_PEEK)
            elif readinto is not None:
                n = readinto(free, len(free))
            else:
                n = conn.readinto(free) or 0
            if n == 0:
                handshake.receive_eof()
                raise IncompleteHandshakeError(_PEER_LEFT)
            taken = handshake.buffer_updated(n)
            if sock is not None:
                # A refusal consumes all it peeked, so that closing does not reset the
                # connection before the peer has read the answer.
                _consume(sock, free, n if handshake.state != ACCEPTED else taken)
        response = handshake.data_to_send()
        if on_response is not None:
            on_response(response)
        if settimeout is not None:
            settimeout(_remaining(deadline))
        if handshake.rejection is not None:
            try:
                _send(conn, response)
            except TimeoutError:
                raise
            except OSError:
                pass  # the peer is gone; the refusal is still what the caller learns
            raise handshake.rejection
        _send(conn, response)
        result = handshake.handshake
        assert result is not None
        if sock is None and handshake.trailing():
            # Bytes after the head: hand the buffer over instead of copying them.
            result.read_ahead = handshake.trailing()
        _set_nodelay(conn)
        return result
    except TimeoutError as exc:
        if isinstance(exc, HandshakeTimeoutError):
            raise
        raise HandshakeTimeoutError(f"{_TIMED_OUT} ({exc})") from exc
    finally:
        if settimeout is not None:
            try:
                settimeout(previous)
            except OSError:
                pass


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``; raises HandshakeTimeoutError when none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise HandshakeTimeoutError(_TIMED_OUT)
    return left


def _peekable(conn: Any) -> _Peekable | None:
    """The plain socket under ``conn`` if the head can be peeked from it, else None."""
    if isinstance(conn, Conn):
        if conn.pending:
            return None
        conn = conn.socket
    if isinstance(conn, socket.socket) and not isinstance(conn, ssl.SSLSocket):
        return conn
    return None


def _consume(sock: _Peekable, peeked: memoryview, count: int) -> None:
    """Read for real the first ``count`` bytes peeked into ``peeked`` (same bytes, same place)."""
    start = 0
    while start < count:
        n = sock.recv_into(peeked[start:count])
        if n == 0:
            break
        start += n


def _with_conn(conn: Any, handshake: Handshake) -> tuple[Conn, Handshake]:
    ahead, handshake.read_ahead = handshake.read_ahead, b""
    if isinstance(conn, Conn) and not ahead:
        return conn, handshake
    return Conn(conn, ahead), handshake


def _set_nodelay(conn: Any) -> None:
    # As Go does for every TCP connection: a message that leaves as several frames must
    # not wait for the peer's delayed ACK (Nagle's algorithm holds back the last write).
    sock = getattr(conn, "socket", conn)  # a wsio.Conn wraps its socket
    try:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass  # not a TCP socket


def _send(conn: Any, data: bytes) -> None:
    sendall = getattr(conn, "sendall", None)
    if sendall is not None:
        sendall(data)
        return
    conn.write(data)
    flush = getattr(conn, "flush", None)
    if flush is not None:
        flush()


# -- module-level helpers ------------------------------------------------------------

_DEFAULT_UPGRADER = Upgrader()
_Origins = Iterable[str | None] | None


@functools.lru_cache(maxsize=64)
def _cached_upgrader(origins: tuple[str | None, ...] | None, timeout: float | None) -> Upgrader:
    return Upgrader(origins=origins, timeout=timeout)


def _upgrader_for(
    upgrader: Upgrader | None,
    origins: _Origins,
    timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
) -> Upgrader:
    """The Upgrader a module-level helper uses: ``upgrader``, or one for these keywords."""
    if upgrader is not None:
        if origins is not None:
            raise TypeError("pass origins= to the Upgrader, not beside it")
        return upgrader
    if origins is None and timeout == DEFAULT_HANDSHAKE_TIMEOUT:
        return _DEFAULT_UPGRADER
    if isinstance(origins, (str, bytes)):
        raise TypeError("origins must be a sequence of origins, not one string")
    return _cached_upgrader(None if origins is None else tuple(origins), timeout)


def upgrade(
    conn: Any, *, origins: _Origins = None, timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
) -> Handshake:
    """Run the server side of the opening handshake on ``conn`` with default settings.

    ``origins`` and ``timeout`` (10 s by default) are :class:`Upgrader`'s; see
    :meth:`Upgrader.upgrade`.
    """
    return _upgrader_for(None, origins, timeout).upgrade(conn)


def upgrade_conn(
    conn: Any, *, origins: _Origins = None, timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
) -> tuple[Conn, Handshake]:
    """:func:`upgrade`, returning a :class:`wsio.Conn` that reads any read-ahead first."""
    return _upgrader_for(None, origins, timeout).upgrade_conn(conn)


def check_request(
    method: str | bytes,
    headers: Iterable[tuple[str | bytes, str | bytes]],
    *,
    target: str | bytes = "/",
    version: tuple[int, int] = (1, 1),
    upgrader: Upgrader | None = None,
    origins: _Origins = None,
) -> Accepted:
    """Check a request that another HTTP server parsed; see :meth:`Upgrader.check`.

    For frameworks: send ``accepted.response`` and go on with WebSocket frames, or answer
    a RejectConnectionError ``exc`` with ``build_rejection(exc.status, exc.reason,
    exc.headers)``. ``origins`` is :class:`Upgrader`'s (403 for another Origin); give
    it or ``upgrader``, not both (TypeError).
    """
    rules = _upgrader_for(upgrader, origins)
    return rules.check(method, headers, target=target, version=version)


class UpgradeRequestHandler(BaseHTTPRequestHandler):
    """A ``BaseHTTPRequestHandler`` whose request heads wsio reads, for :func:`upgrade_http`.

    Subclass it instead of ``BaseHTTPRequestHandler``: every request head is read with
    wsio's parser, the limits of :attr:`upgrader` (431, 414) and its deadline for the
    whole head, and refused with 400 for what wsio refuses (obs-fold, bare CR, NUL,
    non-token names, whitespace before a colon, a tab in the request line) before
    http.server parses it; http.server then parses only a head that passed. ``do_GET``
    calls ``upgrade_http(self)`` (which uses :attr:`upgrader`) as usual. A head that times
    out is logged and the connection closed without an answer. It needs the buffered
    ``rfile`` that ``StreamRequestHandler`` makes by default (``rbufsize`` -1).
    """

    #: The rules for the head and the upgrade; None: the defaults of :class:`Upgrader`.
    upgrader: Upgrader | None = None
    #: True once wsio has read and checked the current request's head.
    head_checked: bool = False

    def handle_one_request(self) -> None:
        """Read and check one request head with wsio's parser, then dispatch as usual."""
        upgrader = self.upgrader or _DEFAULT_UPGRADER
        self.head_checked = False
        try:
            head = _read_request_head(self, upgrader)
        except IncompleteHandshakeError:
            self.close_connection = True
            return
        except TimeoutError as exc:
            self.log_error("Request timed out: %r", exc)
            self.close_connection = True
            return
        except HeadError as exc:
            self.requestline = self.request_version = self.command = ""
            self.close_connection = True
            self.log_request(exc.status)
            refusal = RejectConnectionError(str(exc), status=exc.status)
            self.wfile.write(upgrader.refusal(refusal)[1])
            self.wfile.flush()
            return
        if head is None:
            self.close_connection = True
            return
        line_end = head.index(b"\n") + 1
        self.raw_requestline = head[:line_end]
        real = self.rfile
        # http.server parses the head that passed, from memory.
        self.rfile = io.BytesIO(head[line_end:])
        try:
            parsed = self.parse_request()
        finally:
            self.rfile = real
        if not parsed:
            return
        self.head_checked = True
        method = getattr(self, "do_" + self.command, None)
        if method is None:
            self.send_error(501, f"Unsupported method ({self.command!r})")
            return
        try:
            method()
            self.wfile.flush()
        except TimeoutError as exc:
            self.log_error("Request timed out: %r", exc)
            self.close_connection = True


def _read_request_head(handler: BaseHTTPRequestHandler, upgrader: Upgrader) -> bytes | None:
    """The request head from ``handler.rfile``, checked; None if the peer sent nothing.

    Only the head's bytes are taken from the buffered reader (peeked, then read), so
    what follows stays for the handler. Raises HeadError or TimeoutError at the deadline.
    """
    rfile = handler.rfile
    sock = handler.connection
    parser = upgrader.new_parser()
    timeout = upgrader.timeout
    deadline = None if timeout is None else time.monotonic() + timeout
    previous = sock.gettimeout()
    try:
        while True:
            if deadline is not None:
                sock.settimeout(_remaining(deadline))
            chunk = rfile.peek()  # type: ignore[attr-defined]
            if not chunk:
                if parser.filled == 0:
                    return None
                raise IncompleteHandshakeError(_PEER_LEFT)
            before = parser.filled
            taken = parser.feed(chunk)
            if parser.complete:
                rfile.read(parser.end - before)
                return bytes(parser.buffer[: parser.end])
            rfile.read(taken)
    finally:
        if deadline is not None:
            try:
                sock.settimeout(previous)
            except OSError:
                pass


def upgrade_http(
    handler: BaseHTTPRequestHandler,
    upgrader: Upgrader | None = None,
    *,
    origins: _Origins = None,
) -> tuple[Conn, Handshake]:
    """Upgrade from inside an :mod:`http.server` handler's ``do_GET`` (Go's ``UpgradeHTTP``).

    Checks the request http.server parsed, writes the 101 response on the connection and
    returns a :class:`wsio.Conn` that first serves the bytes http.server had already
    buffered in ``handler.rfile``. The handler is marked ``close_connection``: when
    ``do_GET`` returns, http.server closes the connection instead of reading another
    request. The request is logged with ``handler.log_request`` like any other. A
    refusal is answered and raised as RejectConnectionError. ``upgrader`` defaults to
    the handler's ``upgrader`` attribute (:class:`UpgradeRequestHandler`), then to
    ``Upgrader(origins=origins)``; its ``timeout`` bounds writing the answer.

    The head must meet the Upgrader's rules and limits whichever parser read it: with
    :class:`UpgradeRequestHandler` wsio read it, within the deadline; otherwise what
    http.server kept (the request line, the headers and their parse defects) is checked
    again here, after http.server spent the time and CPU reading it with no deadline
    (only its per-read ``timeout`` class attribute): subclass UpgradeRequestHandler.
    """
    if upgrader is None:
        upgrader = getattr(handler, "upgrader", None)
    upgrader = _upgrader_for(upgrader, origins)
    handler.close_connection = True
    sock = handler.connection
    deadline = None if upgrader.timeout is None else time.monotonic() + upgrader.timeout
    version = _parse_request_version(handler.request_version)
    try:
        if not (isinstance(handler, UpgradeRequestHandler) and handler.head_checked):
            _recheck_head(handler, upgrader)
        accepted = upgrader.check(
            handler.command or "",
            handler.headers.items(),
            target=handler.path,
            version=version,
        )
    except RejectConnectionError as exc:
        handler.log_request(exc.status)
        handler.wfile.flush()
        try:
            _send_by(sock, build_rejection(exc.status, exc.reason, exc.headers), deadline)
        except OSError:
            pass
        raise
    ahead = _drain_buffered(handler, sock)
    handler.log_request(101)
    handler.wfile.flush()
    _send_by(sock, accepted.response, deadline)
    _set_nodelay(sock)
    return Conn(sock, ahead), accepted.handshake


def _send_by(sock: Any, data: bytes, deadline: float | None) -> None:
    """Send all of ``data`` before ``deadline`` (HandshakeTimeoutError), timeout restored."""
    if deadline is None:
        _send(sock, data)
        return
    previous = sock.gettimeout()
    try:
        sock.settimeout(_remaining(deadline))
        _send(sock, data)
    except TimeoutError as exc:
        if isinstance(exc, HandshakeTimeoutError):
            raise
        raise HandshakeTimeoutError(f"{_TIMED_OUT} ({exc})") from exc
    finally:
        sock.settimeout(previous)


def _recheck_head(handler: BaseHTTPRequestHandler, upgrader: Upgrader) -> None:
    """Apply wsio's head rules to what a plain http.server handler parsed, or refuse.

    http.server keeps the raw request line and the parsed headers; it accepts obs-fold,
    bare CR, NUL and names that are not tokens, and records what it could not parse as
    defects. Rebuilding the head from what it kept and parsing that with wsio's parser
    refuses what the Upgrader refuses (400, 414, 431).
    """
    headers = handler.headers
    if getattr(headers, "defects", None):
        # email's parser dropped or re-split a line (bare CR, a line without a colon,
        # whitespace before a colon): the head was not what it now looks like.
        raise upgrader.refusal(RejectConnectionError("malformed request head"))[0]
    parser = upgrader.new_parser()
    try:
        parser.feed(bytes(getattr(handler, "raw_requestline", b"")))
        for name, value in headers.raw_items():
            if parser.complete:
                break
            line = f"{name}: {value}\r\n".encode("latin-1", "replace")
            if parser.feed(line) < len(line):
                raise HeadError(f"head is larger than {upgrader.max_head_size} bytes", 431)
        parser.feed(b"\r\n")
    except HeadError as exc:
        raise upgrader.refusal(RejectConnectionError(str(exc), status=exc.status))[0] from None
    if not parser.complete:
        raise upgrader.refusal(RejectConnectionError("malformed request head"))[0]


def _parse_request_version(text: str) -> tuple[int, int]:
    if text.startswith("HTTP/"):
        major, dot, minor = text[5:].partition(".")
        if dot and major.isdigit() and minor.isdigit():
            return int(major), int(minor)
    return (0, 9)


def _drain_buffered(handler: BaseHTTPRequestHandler, sock: Any) -> bytes:
    """The bytes http.server read past the request head, taken out of ``handler.rfile``."""
    rfile = handler.rfile
    peek = getattr(rfile, "peek", None)
    if peek is None:
        return b""
    # peek() returns the buffered bytes, or does one raw read if there are none: make
    # that read non-blocking so that an empty buffer costs nothing.
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        try:
            ahead = bytes(peek())
        except (OSError, ValueError):
            ahead = b""
        if ahead:
            rfile.read(len(ahead))
    finally:
        sock.settimeout(timeout)
    return ahead
