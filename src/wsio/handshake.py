"""The server side of the opening handshake (RFC 6455 §4.2): :class:`Upgrader` and friends.

Three ways in, one set of checks:

- :meth:`Upgrader.upgrade` on a raw connected socket (the zero-copy path: the request
  head is read into a pooled buffer and parsed in place; hooks get views of it).
- :func:`upgrade_http` from inside :mod:`http.server` (a ``BaseHTTPRequestHandler``
  whose ``do_GET`` calls it), the counterpart of gobwas/ws's ``UpgradeHTTP``.
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
426    a Sec-WebSocket-Version other than 13 (with ``Sec-WebSocket-Version: 13``)
414    a request line over ``max_line``
431    a header line over ``max_line``, more than ``max_headers`` headers, or a head
       over ``max_head_size``
=====  ==============================================================================

A hook that raises RejectConnectionError answers with its status, reason (the
text/plain body) and headers; any other exception from a hook answers 500 with a
generic body and is chained as the ``__cause__`` of the RejectConnectionError raised.
No exception text other than a rejection's own reason ever reaches the peer.

Timeouts belong to the caller: set one on the socket (or pass ``timeout=`` to the
Upgrader, which sets and restores it) so that a silent or dripping peer cannot hold a
thread (reliability.md A.5). The Upgrader never closes the connection, even after a
rejection: the caller does.
"""

from __future__ import annotations

import http
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from wsio._engine.http import HeadError, RequestParser
from wsio._engine.httphead import (
    ABSENT,
    HeaderSyntaxError,
    Option,
    accept_key,
    check_value,
    format_options,
    has_token,
    is_token,
    is_valid_key,
    parse_options,
    parse_tokens,
    scan_cookies,
)
from wsio._engine.limits import DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS, DEFAULT_MAX_LINE
from wsio.conn import Conn
from wsio.exceptions import (
    HandshakeTimeoutError,
    IncompleteHandshakeError,
    LocalProtocolError,
    RejectConnectionError,
)

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

__all__ = [
    "DEFAULT_SERVER_READ_BUFFER_SIZE",
    "Accepted",
    "DebugUpgrader",
    "Handshake",
    "HeadersLike",
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

#: Extra response headers: a mapping, ``(name, value)`` pairs, or raw CRLF-terminated lines.
HeadersLike: TypeAlias = (
    "Mapping[str, str | bytes] | Iterable[tuple[str, str | bytes]] | bytes | str"
)

#: A view of request bytes, valid only until the hook it is passed to returns.
View: TypeAlias = "memoryview | bytes"


@dataclass(slots=True)
class Handshake:
    """What the opening handshake agreed on: the subprotocol and the accepted extensions.

    ``read_ahead`` holds bytes the peer sent after its request that the server had to
    read with it (only on streams that cannot peek: TLS sockets, file-like streams); wrap
    the stream as ``wsio.Conn(sock, handshake.read_ahead)`` or use
    :meth:`Upgrader.upgrade_conn`, which does. It is always empty on a client.
    """

    subprotocol: str | None = None
    extensions: list[Option] = field(default_factory=list)
    read_ahead: bytes | memoryview = field(default=b"", repr=False, compare=False)


# -- rendering -------------------------------------------------------------------------

# RFC 6455 §4.2.2 item 5: the 101 status line, Upgrade, Connection, then the accept key.
_HEAD_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)
_CRLF = b"\r\n"
_PROTOCOL_LINE = b"Sec-WebSocket-Protocol: "
_EXTENSIONS_LINE = b"Sec-WebSocket-Extensions: "


def encode_headers(headers: HeadersLike | None, what: str = "response header") -> bytes:
    """Header lines for ``headers``, each CRLF-terminated, checked for injection.

    Names must be tokens and values free of control characters (CR, LF, NUL...):
    LocalProtocolError otherwise, before anything is written (response splitting,
    CVE-2023-37276). Raw ``bytes``/``str`` lines are checked the same way.
    """
    if not headers:
        return b""
    if isinstance(headers, (bytes, str)):
        text = headers.decode("latin-1") if isinstance(headers, bytes) else headers
        if not text.endswith("\r\n"):
            raise LocalProtocolError(f"raw {what} lines must end with CRLF")
        lines: list[tuple[str, str | bytes]] = []
        for line in text[:-2].split("\r\n"):
            key, colon, raw = line.partition(":")
            if not colon:
                raise LocalProtocolError(f"{what} line has no colon: {line[:64]!r}")
            lines.append((key, raw.strip(" \t")))
        pairs: Iterable[tuple[str, str | bytes]] = lines
    elif isinstance(headers, Mapping):
        pairs = headers.items()
    else:
        pairs = headers
    out = []
    name: object
    for name, value in pairs:
        if not isinstance(name, str) or not is_token(name):
            raise LocalProtocolError(f"{what} name is not a token: {name!r}")
        text_value = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        check_value(text_value, f"value of {what} {name}")
        out.append(f"{name}: {text_value}\r\n")
    return "".join(out).encode("latin-1", "strict")


def build_response(
    accept: str,
    *,
    subprotocol: str | None = None,
    extensions: Sequence[Option] = (),
    headers: HeadersLike | None = None,
) -> bytes:
    """The whole ``101 Switching Protocols`` response (RFC 6455 §4.2.2), one ``bytes``.

    ``accept`` is the Sec-WebSocket-Accept value (:func:`wsio.accept_key` of the key).
    Raises LocalProtocolError for a value that cannot be written safely.
    """
    parts = [_HEAD_101, check_value(accept, "Sec-WebSocket-Accept").encode("ascii"), _CRLF]
    if subprotocol is not None:
        if not is_token(subprotocol):
            raise LocalProtocolError(f"subprotocol is not a token: {subprotocol!r}")
        parts += (_PROTOCOL_LINE, subprotocol.encode("ascii"), _CRLF)
    if extensions:
        parts += (_EXTENSIONS_LINE, format_options(extensions).encode("latin-1"), _CRLF)
    if headers:
        parts.append(encode_headers(headers))
    parts.append(_CRLF)
    return b"".join(parts)


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def build_rejection(
    status: int,
    reason: str = "",
    headers: HeadersLike | None = None,
) -> bytes:
    """A complete error response: ``status``, ``reason`` as the text/plain body, ``headers``.

    The body is the status's phrase when ``reason`` is empty. A status outside 400-599
    becomes 500 (a rejection is an error). ``Connection: close`` is always sent.
    """
    if not 400 <= status <= 599:
        status = 500
    body = (reason or _reason_phrase(status)).encode("utf-8")
    return b"".join(
        (
            f"HTTP/1.1 {status} {_reason_phrase(status)}\r\n"
            "Connection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n".encode("ascii"),
            encode_headers(headers),
            _CRLF,
            body,
        )
    )


# -- the checks ----------------------------------------------------------------------

# The built-in refusals, raised inside the checks and answered by the caller.
_VERSION_13 = (("Sec-WebSocket-Version", "13"),)
_ALLOW_GET = (("Allow", "GET"),)


# Names checked by the Upgrader itself (lower case prefixes; the rest go to on_header).
_OWN_PREFIXES = (
    b"sec-websocket-",
    b"host",
    b"upgrade",
    b"connection",
    b"content-length",
    b"transfer-encoding",
)


_PEER_LEFT = "the peer closed the connection during the handshake"


class _HookFailed(Exception):
    """A hook raised something other than RejectConnectionError (answered with 500)."""


def _reject(reason: str, status: int = 400, headers: Any = None) -> RejectConnectionError:
    return RejectConnectionError(reason, status=status, headers=headers)


@dataclass(slots=True)
class Accepted:
    """A request that passed :func:`check_request`: the result and the 101 to send."""

    handshake: Handshake
    #: The complete ``101 Switching Protocols`` response, ready for one ``sendall``.
    response: bytes


class Upgrader:
    """Checks opening-handshake requests and answers them (gobwas/ws ``Upgrader``).

    Every hook is optional and may raise :class:`~wsio.RejectConnectionError` to refuse
    with its status, reason and headers; any other exception refuses with 500. Byte
    arguments (``uri``, ``host``, ``key``, ``value``) are ``memoryview`` slices of the
    read buffer, **valid only until the hook returns**: copy (``bytes(value)``) what you
    keep. With ``hook_bytes=True`` they are ``bytes`` instead.

    - ``on_request(uri)`` after the request line, when method and version are acceptable.
    - ``on_host(host)`` with the Host value.
    - ``on_header(key, value)`` for every header that is not Host, Upgrade, Connection or
      Sec-WebSocket-*; ``key`` is canonicalised in place (``Sec-Fetch-Mode``, ``Cookie``).
    - ``on_before_upgrade()`` last; returns extra headers for the 101 response (or None).
    - ``protocol``: the subprotocols this server speaks (a sequence), or a predicate
      called with each offered one, in the client's order; the first match is selected.
    - ``protocol_custom(raw)``: given the raw Sec-WebSocket-Protocol value (all such
      headers joined with ", "), returns the subprotocol or None; overrides ``protocol``.
    - ``negotiate(option)``: called per offered extension, in order; return the
      :class:`Option` to accept (appended to the response) or None to decline.
    - ``header``: extra headers sent with every response, success or refusal.
    - ``max_line``, ``max_headers``, ``max_head_size``: request-head limits (414/431).
    - ``read_buffer_size``: bytes asked of the socket per read.
    - ``timeout``: seconds for the whole handshake on the socket (set and restored);
      None leaves the socket's own timeout alone. Running out raises HandshakeTimeoutError.

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
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        read_buffer_size: int = DEFAULT_SERVER_READ_BUFFER_SIZE,
        timeout: float | None = None,
        hook_bytes: bool = False,
    ) -> None:
        self.on_request = on_request
        self.on_host = on_host
        self.on_header = on_header
        self.on_before_upgrade = on_before_upgrade
        if protocol is None or callable(protocol):
            self._select: Callable[[str], bool] | None = protocol
        else:
            if isinstance(protocol, str):
                raise TypeError("protocol must be a sequence of names, not one string")
            for name in protocol:
                if not is_token(name):
                    raise LocalProtocolError(f"subprotocol is not a token: {name!r}")
            self._select = frozenset(protocol).__contains__
        self.protocol = protocol
        self.protocol_custom = protocol_custom
        self.negotiate = negotiate
        self.header = header
        self._header = encode_headers(header)
        if max_head_size < 16 or max_line < 16 or max_headers < 0 or read_buffer_size < 1:
            raise ValueError("Upgrader limits are too small")
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_head_size = max_head_size
        self.read_buffer_size = read_buffer_size
        self.timeout = timeout
        self.hook_bytes = hook_bytes
        self._pool: list[RequestParser] = []
        self._rejections: dict[tuple[int, str], bytes] = {}
        self._lock = threading.Lock()

    # -- public entry points ---------------------------------------------------------

    def upgrade(self, conn: Any) -> Handshake:
        """Read the request from ``conn``, check it, answer it; return the Handshake.

        ``conn`` is a connected socket, an ``ssl.SSLSocket``, a :class:`wsio.Conn` or a
        binary file-like stream (``readinto`` + ``write``). On a plain socket the head is
        peeked, so bytes after it stay in the socket; elsewhere they end up in
        ``Handshake.read_ahead``. A TCP socket gets TCP_NODELAY, as Go sets on every TCP
        connection. Raises RejectConnectionError after answering a refusal,
        IncompleteHandshakeError if the peer left first, HandshakeTimeoutError or OSError.
        """
        return self._upgrade(conn, None, None)

    def upgrade_conn(self, conn: Any) -> tuple[Conn, Handshake]:
        """Like :meth:`upgrade`, returning a :class:`wsio.Conn` that reads any read-ahead first."""
        handshake = self._upgrade(conn, None, None)
        ahead, handshake.read_ahead = handshake.read_ahead, b""
        if isinstance(conn, Conn) and not ahead:
            return conn, handshake
        return Conn(conn, ahead), handshake

    def check(
        self,
        method: str | bytes,
        headers: Iterable[tuple[str | bytes, str | bytes]],
        *,
        target: str | bytes = "/",
        version: tuple[int, int] = (1, 1),
    ) -> Accepted:
        """Check an already parsed request with this Upgrader's rules and hooks.

        Returns :class:`Accepted` (with the 101 response to send), or raises
        RejectConnectionError with the status, reason and headers to answer with (the
        Upgrader's ``header`` included); nothing is written.
        """
        pairs = [
            (
                name.encode("latin-1") if isinstance(name, str) else bytes(name),
                value.encode("latin-1") if isinstance(value, str) else bytes(value),
            )
            for name, value in headers
        ]
        raw_method = method.encode("latin-1") if isinstance(method, str) else method
        raw_target = target.encode("latin-1") if isinstance(target, str) else target
        try:
            handshake, response = self._check(raw_method, raw_target, version, pairs, len(pairs))
        except RejectConnectionError as exc:
            try:
                encode_headers(exc.headers)
            except LocalProtocolError as bad:
                # A hook's rejection headers cannot be written safely: refuse with 500.
                raise self._with_header(_reject("", 500)) from bad
            raise self._with_header(exc) from exc.__cause__
        except _HookFailed as exc:
            raise self._with_header(_reject("", 500)) from exc.__cause__
        return Accepted(handshake, response)

    # -- the raw path ------------------------------------------------------------------

    def _upgrade(
        self,
        conn: Any,
        on_raw_request: Callable[[bytes], object] | None,
        on_raw_response: Callable[[bytes], object] | None,
    ) -> Handshake:
        previous: float | None = None
        if self.timeout is not None:
            previous = conn.gettimeout()
            conn.settimeout(self.timeout)
        parser = self._get_parser()
        keep_parser = True
        sock = _peekable(conn)
        try:
            try:
                self._read_head(conn, sock, parser)
            except HeadError as exc:
                # Consume what was peeked, so that closing does not reset the connection
                # before the peer has read the answer.
                _consume(sock, parser, parser.filled)
                raise self._refuse(conn, _reject(str(exc), exc.status), on_raw_response) from None
            if on_raw_request is not None:
                on_raw_request(bytes(parser.buffer[: parser.end]))
            try:
                handshake, response = self._check(
                    parser.method, parser.target, parser.version, parser, len(parser)
                )
            except RejectConnectionError as exc:
                _consume(sock, parser, parser.filled)
                raise self._refuse(conn, exc, on_raw_response) from exc.__cause__
            except _HookFailed as exc:
                _consume(sock, parser, parser.filled)
                raise self._refuse(conn, _reject("", 500), on_raw_response) from exc.__cause__
            if sock is not None:
                # Exactly the head: what follows it stays in the socket.
                _consume(sock, parser, parser.end)
            elif parser.filled > parser.end:
                # Bytes after the head: hand the buffer over instead of copying them.
                handshake.read_ahead = parser.trailing()
                keep_parser = False
            if on_raw_response is not None:
                on_raw_response(response)
            _send(conn, response)
            _set_nodelay(conn)
            return handshake
        except TimeoutError as exc:
            if isinstance(exc, HandshakeTimeoutError):
                raise
            raise HandshakeTimeoutError(f"the opening handshake timed out ({exc})") from exc
        finally:
            if keep_parser:
                self._put_parser(parser)
            if self.timeout is not None:
                try:
                    conn.settimeout(previous)
                except OSError:
                    pass

    def _get_parser(self) -> RequestParser:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return RequestParser(
            max_line=self.max_line, max_headers=self.max_headers, max_size=self.max_head_size
        )

    def _put_parser(self, parser: RequestParser) -> None:
        parser.reset()
        with self._lock:
            if len(self._pool) < 16:
                self._pool.append(parser)

    def _read_head(self, conn: Any, sock: _Peekable | None, parser: RequestParser) -> None:
        """Read until the head is complete; with ``sock``, the last chunk stays unread."""
        size = self.read_buffer_size
        if sock is not None:
            # Peek, parse only the new bytes; while the head is incomplete every peeked
            # byte belongs to it, so consume them and peek again (this blocks: no busy
            # loop). Once complete, the caller consumes exactly up to the end of the head.
            while True:
                free = parser.free()
                n = sock.recv_into(free, min(size, len(free)), socket.MSG_PEEK)
                if n == 0:
                    raise IncompleteHandshakeError(_PEER_LEFT)
                if parser.advance(n):
                    return
                _consume(sock, parser, parser.filled)
        readinto = getattr(conn, "recv_into", None)
        while True:
            free = parser.free()
            if readinto is not None:
                n = readinto(free, min(size, len(free)))
            else:
                got = conn.readinto(free[:size])
                n = 0 if got is None else got
            if n == 0:
                raise IncompleteHandshakeError(_PEER_LEFT)
            if parser.advance(n):
                return

    def _refuse(
        self,
        conn: Any,
        exc: RejectConnectionError,
        on_raw_response: Callable[[bytes], object] | None,
    ) -> RejectConnectionError:
        """Answer ``exc`` on ``conn`` and return the exception to raise."""
        try:
            response = self._rejection_bytes(exc)
        except LocalProtocolError as bad:
            # A hook's rejection headers cannot be written safely: refuse with 500.
            exc = _reject("", 500)
            exc.__cause__ = bad
            response = self._rejection_bytes(exc)
        if on_raw_response is not None:
            on_raw_response(response)
        try:
            _send(conn, response)
        except OSError:
            pass  # the peer is gone; the refusal is still what the caller learns
        return self._with_header(exc)

    def _rejection_bytes(self, exc: RejectConnectionError) -> bytes:
        status = exc.status if 400 <= exc.status <= 599 else 500
        if exc.headers:
            headers = self._header + encode_headers(exc.headers)
            return build_rejection(status, exc.reason, headers)
        key = (status, exc.reason)
        cached = self._rejections.get(key)
        if cached is None:
            cached = build_rejection(status, exc.reason, self._header)
            if len(self._rejections) < 64:
                self._rejections[key] = cached
        return cached

    def _with_header(self, exc: RejectConnectionError) -> RejectConnectionError:
        """The refusal as raised to the caller: status, reason, every header sent."""
        status = exc.status if 400 <= exc.status <= 599 else 500
        reason = exc.reason or _reason_phrase(status)
        headers = _pairs(self.header) + list(exc.headers)
        out = RejectConnectionError(reason, status=status, headers=headers)
        out.__cause__ = exc.__cause__
        return out

    # -- the checks, shared by every entry point -----------------------------------------

    def _check(
        self,
        method: bytes,
        target: bytes,
        version: tuple[int, int],
        headers: Any,
        count: int,
    ) -> tuple[Handshake, bytes]:
        """Check one request; return the Handshake and the 101 response bytes.

        ``headers`` is a RequestParser (names and values read as views) or a list of
        ``(name, value)`` bytes pairs. Raises RejectConnectionError or _HookFailed.
        """
        # RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        if version[0] != 1 or version[1] < 1:
            raise _reject("the WebSocket handshake needs HTTP/1.1", 505)
        if method != b"GET":
            raise _reject("the WebSocket handshake must be a GET request", 405, _ALLOW_GET)
        views = not self.hook_bytes
        parser = headers if isinstance(headers, RequestParser) else None
        if self.on_request is not None:
            uri: View = target
            if parser is not None and views:
                with memoryview(target) as uri_view:
                    _call(self.on_request, uri_view)
            else:
                _call(self.on_request, uri)

        host = upgrade = connection = False
        key: bytes | None = None
        ws_version: bytes | None = None
        protocols: list[bytes] = []
        extensions: list[bytes] = []
        on_header = self.on_header
        names = parser.lower_names() if parser is not None else [h[0].lower() for h in headers]
        for i in range(count):
            name = names[i]
            if not name.startswith(_OWN_PREFIXES):
                if on_header is not None:
                    _call_header(on_header, parser, headers, i, views)
                continue
            value = parser.value_bytes(i) if parser is not None else headers[i][1]
            if name == b"host":
                # RFC 7230 §5.4: "A server MUST respond with a 400 (Bad Request) status
                # code to any HTTP/1.1 request message that lacks a Host header field and
                # to any that contains more than one Host header field".
                if host:
                    raise _reject("more than one Host header")
                host = True
                if self.on_host is not None:
                    if parser is not None and views:
                        with parser.value(i) as host_view:
                            _call(self.on_host, host_view)
                    else:
                        _call(self.on_host, value)
            elif name == b"upgrade":
                # RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the value
                # "websocket", treated as an ASCII case-insensitive value."
                upgrade = upgrade or has_token(value, "websocket")
            elif name == b"connection":
                # Item 4: "A |Connection| header field that includes the token "Upgrade",
                # treated as an ASCII case-insensitive value."
                connection = connection or has_token(value, "upgrade")
            elif name == b"sec-websocket-key":
                # RFC 6455 §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear
                # more than once in an HTTP request."
                if key is not None:
                    raise _reject("more than one Sec-WebSocket-Key header")
                key = value
            elif name == b"sec-websocket-version":
                # RFC 6455 §11.3.5: "MUST NOT appear more than once in an HTTP request."
                if ws_version is not None:
                    raise _reject("more than one Sec-WebSocket-Version header")
                ws_version = value
            elif name == b"content-length" or name == b"transfer-encoding":
                # RFC 7230 §3.3: these announce a request body, and what follows this
                # head is the WebSocket stream: a body would be read as frames (or the
                # frames as a body by a proxy in front). No body, then.
                if name == b"transfer-encoding" or value.strip(b" \t") != b"0":
                    raise _reject("the upgrade request must not have a body")
                if on_header is not None:
                    _call_header(on_header, parser, headers, i, views)
            elif name == b"sec-websocket-protocol":
                protocols.append(value)
            elif name == b"sec-websocket-extensions":
                extensions.append(value)
            elif on_header is not None:
                # Other Sec-WebSocket-* (and e.g. "Hostname", "Upgrade-Insecure-Requests")
                # go to the application like any other header.
                _call_header(on_header, parser, headers, i, views)

        if not host:
            raise _reject("missing Host header")
        if not upgrade:
            raise _reject('missing or bad Upgrade header: expected "websocket"')
        if not connection:
            raise _reject('missing or bad Connection header: expected "Upgrade"')
        # Item 6: "A |Sec-WebSocket-Version| header field, with a value of 13."
        if ws_version is None:
            raise _reject("missing Sec-WebSocket-Version header")
        if ws_version.strip(b" \t") != b"13":
            # RFC 6455 §4.4: "... MUST abort the WebSocket handshake ... and send an
            # appropriate HTTP error code (such as 426 Upgrade Required) and a
            # |Sec-WebSocket-Version| header field indicating the version(s) the server
            # is capable of understanding."
            raise _reject("unsupported WebSocket version", 426, _VERSION_13)
        # Item 5: "a base64-encoded value that, when decoded, is 16 bytes in length."
        if key is None:
            raise _reject("missing Sec-WebSocket-Key header")
        if not is_valid_key(key):
            raise _reject("bad Sec-WebSocket-Key header")

        subprotocol = self._select_subprotocol(protocols)
        accepted = self._negotiate_extensions(extensions)
        extra: HeadersLike | None = None
        if self.on_before_upgrade is not None:
            extra = _call(self.on_before_upgrade)
        try:
            response = build_response(
                accept_key(key),
                subprotocol=subprotocol,
                extensions=accepted,
                headers=self._header + encode_headers(extra) if extra else self._header,
            )
        except LocalProtocolError as exc:
            # A hook returned something that cannot be written: a server bug (500).
            raise _HookFailed() from exc
        return Handshake(subprotocol, accepted), response

    def _select_subprotocol(self, values: list[bytes]) -> str | None:
        if not values:
            return None
        raw = b", ".join(values).decode("latin-1")
        if self.protocol_custom is not None:
            chosen = _call(self.protocol_custom, raw)
            if chosen is not None and (not isinstance(chosen, str) or not is_token(chosen)):
                raise _HookFailed() from LocalProtocolError(
                    f"protocol_custom returned a value that is not a token: {chosen!r}"
                )
            return chosen
        try:
            offered = parse_tokens(raw)
        except HeaderSyntaxError as exc:
            raise _reject(f"malformed Sec-WebSocket-Protocol header: {exc}") from None
        select = self._select
        if select is None:
            return None
        for name in offered:
            if _call(select, name):
                return name
        return None

    def _negotiate_extensions(self, values: list[bytes]) -> list[Option]:
        if not values:
            return []
        try:
            offered = parse_options(b", ".join(values))
        except HeaderSyntaxError as exc:
            raise _reject(f"malformed Sec-WebSocket-Extensions header: {exc}") from None
        negotiate = self.negotiate
        if negotiate is None:
            return []
        accepted = []
        for option in offered:
            result = _call(negotiate, option)
            if result is None:
                continue
            if not isinstance(result, Option):
                raise _HookFailed() from TypeError(
                    f"negotiate must return an Option or None, not {type(result).__name__}"
                )
            accepted.append(result)
        return accepted


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
        return self.upgrader._upgrade(conn, self.on_request, self.on_response)

    def upgrade_conn(self, conn: Any) -> tuple[Conn, Handshake]:
        """:meth:`Upgrader.upgrade_conn`, calling the debug hooks with the raw bytes."""
        handshake = self.upgrade(conn)
        ahead, handshake.read_ahead = handshake.read_ahead, b""
        return Conn(conn, ahead), handshake


# -- module-level helpers ------------------------------------------------------------

_DEFAULT_UPGRADER = Upgrader()


def upgrade(conn: Any) -> Handshake:
    """Run the server side of the opening handshake on ``conn`` with default settings.

    See :meth:`Upgrader.upgrade`.
    """
    return _DEFAULT_UPGRADER.upgrade(conn)


def upgrade_conn(conn: Any) -> tuple[Conn, Handshake]:
    """:func:`upgrade`, returning a :class:`wsio.Conn` that reads any read-ahead first."""
    return _DEFAULT_UPGRADER.upgrade_conn(conn)


def check_request(
    method: str | bytes,
    headers: Iterable[tuple[str | bytes, str | bytes]],
    *,
    target: str | bytes = "/",
    version: tuple[int, int] = (1, 1),
    upgrader: Upgrader | None = None,
) -> Accepted:
    """Check a request that another HTTP server parsed; see :meth:`Upgrader.check`.

    For frameworks: send ``accepted.response`` and go on with WebSocket frames, or answer
    a RejectConnectionError ``exc`` with ``build_rejection(exc.status, exc.reason,
    exc.headers)``.
    """
    return (upgrader or _DEFAULT_UPGRADER).check(method, headers, target=target, version=version)


def upgrade_http(
    handler: BaseHTTPRequestHandler, upgrader: Upgrader | None = None
) -> tuple[Conn, Handshake]:
    """Upgrade from inside an :mod:`http.server` handler's ``do_GET`` (Go's ``UpgradeHTTP``).

    Checks the request http.server parsed, writes the 101 response on the connection and
    returns a :class:`wsio.Conn` that first serves the bytes http.server had already
    buffered in ``handler.rfile``. The handler is marked ``close_connection``: when
    ``do_GET`` returns, http.server closes the connection instead of reading another
    request. The request is logged with ``handler.log_request`` like any other. A
    refusal is answered and raised as RejectConnectionError.
    """
    upgrader = upgrader or _DEFAULT_UPGRADER
    handler.close_connection = True
    sock = handler.connection
    version = _parse_request_version(handler.request_version)
    try:
        accepted = upgrader.check(
            handler.command or "",
            handler.headers.items(),
            target=handler.path,
            version=version,
        )
    except RejectConnectionError as exc:
        handler.log_request(exc.status)
        handler.wfile.flush()
        _send(sock, build_rejection(exc.status, exc.reason, exc.headers))
        raise
    ahead = _drain_buffered(handler, sock)
    handler.log_request(101)
    handler.wfile.flush()
    _send(sock, accepted.response)
    _set_nodelay(sock)
    return Conn(sock, ahead), accepted.handshake


# -- helpers -------------------------------------------------------------------------


class _Peekable(Protocol):
    def recv_into(self, buffer: Any, nbytes: int = ..., flags: int = ..., /) -> int: ...


def _peekable(conn: Any) -> _Peekable | None:
    """The plain socket under ``conn`` if the head can be peeked from it, else None."""
    if isinstance(conn, Conn):
        if conn.pending:
            return None
        conn = conn.socket
    if isinstance(conn, socket.socket) and not isinstance(conn, ssl.SSLSocket):
        return conn
    return None


def _consume(sock: _Peekable | None, parser: RequestParser, upto: int) -> None:
    """Read the peeked bytes before ``upto`` for real, into where they already are.

    Everything before ``parser.consumed`` was consumed already; afterwards everything
    before ``upto`` is. No-op for a stream that is not peeked.
    """
    if sock is None:
        return
    start = parser.consumed
    with memoryview(parser.buffer) as mem:
        while start < upto:
            n = sock.recv_into(mem[start:upto])
            if n == 0:
                break
            start += n
    parser.consumed = start


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


def _call(hook: Callable[..., Any], *args: Any) -> Any:
    try:
        return hook(*args)
    except RejectConnectionError:
        raise
    except Exception as exc:
        raise _HookFailed() from exc


def _canonical(name: bytes) -> bytes:
    # Go's textproto.CanonicalMIMEHeaderKey: upper case after "-" and at the start.
    return b"-".join([part[:1].upper() + part[1:].lower() for part in name.split(b"-")])


def _call_header(
    on_header: Callable[[View, View], object],
    parser: RequestParser | None,
    headers: Any,
    i: int,
    views: bool,
) -> None:
    if parser is None:
        name, value = headers[i]
        _call(on_header, _canonical(name), value)
        return
    # The key is canonicalised in place in the read buffer, as gobwas/ws does.
    with parser.name(i) as key:
        key[:] = _canonical(bytes(key))
        if not views:
            _call(on_header, bytes(key), parser.value_bytes(i))
            return
        with parser.value(i) as value:
            _call(on_header, key, value)


def _pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """``headers`` as ``(name, value)`` str pairs (for the exception raised)."""
    raw = encode_headers(headers).decode("latin-1")
    out = []
    for line in raw.split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            out.append((name, value))
    return out


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
