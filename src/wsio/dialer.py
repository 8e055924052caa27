"""The client side of the opening handshake (RFC 6455 §4.1): :class:`Dialer` and :func:`dial`.

::

    conn, handshake = wsio.dial("wss://example.com/chat", subprotocols=["chat"])

:func:`dial` connects (TCP, a Unix socket, or through an HTTP CONNECT proxy), runs the
TLS handshake for ``wss://``, sends the upgrade request in one write, reads the response
head into one buffer with ``recv_into`` and checks it. It returns a :class:`~wsio.Conn`,
whose first reads are any frames that arrived together with the 101 response, and the
:class:`~wsio.Handshake` (the subprotocol and the extensions the server accepted).

URLs: ``ws://host[:port]/path?query`` and ``wss://...`` (ports 80 and 443 by default;
IPv6 hosts in brackets; user information becomes an ``Authorization: Basic`` header;
fragments are refused, RFC 6455 §3). ``ws+unix://<socket path, percent-encoded>/path``
and ``wss+unix://...`` connect to a Unix socket, e.g.
``ws+unix://%2Frun%2Fapp.sock/chat``, with ``Host: localhost``; ``unix_path=`` does the
same for a plain ``ws://`` URL, whose host then only fills the Host header.

Proxies: ``proxy=True`` (the default, as in websockets, curl and requests) takes the
proxy from the environment: ``wss_proxy``/``ws_proxy`` first, then ``https_proxy``
(RFC 6455 §4.1 prefers an HTTPS proxy for both schemes), then ``http_proxy`` for
``ws://``, then ``all_proxy``; ``no_proxy`` is honoured, and loopback hosts
(``localhost``, 127.0.0.0/8, ::1) and Unix sockets never use an environment proxy.
``proxy="http://user:pass@host:port"`` uses that proxy for every TCP host (never for Unix sockets);
``proxy=None`` (or False) uses none. Only ``http://`` proxies speaking CONNECT are
supported; a refusal raises :class:`~wsio.ProxyError` with the proxy's status (407 when
it wants credentials: put them in the proxy URL).

Timeouts: one ``timeout`` covers connecting, the proxy exchange, TLS and the opening
handshake; each step gets the time that is left, and running out raises
:class:`~wsio.HandshakeTimeoutError` (name resolution is not bounded by it). After the
handshake there is **no read timeout** by default: a socket the Dialer made is left
blocking (timeout None), a ``sock=`` gets its own timeout back, so a server that goes
silent blocks a read forever. ``keep_timeout=True`` leaves ``timeout`` on the socket
instead (a read or write without progress for that long raises TimeoutError); or call
``conn.settimeout(...)``. The socket is closed whenever dialing fails.

Extensions: without an ``accept_extensions`` hook the Dialer fails the connection
(:class:`~wsio.UnexpectedExtensionError`) on an extension it did not offer, one the
server accepts twice, and a parameter the offer does not allow or that is repeated
(RFC 6455 §4.1, §9.1; RFC 7692 §7.1 for permessage-deflate); the hook, when given,
makes those decisions (wsflate's does).

For clients on other I/O (wsio.aio): :func:`parse_url` gives the :class:`Target` a URL
names, :meth:`Dialer.proxy_for` the proxy a connection to it takes, and
:meth:`Dialer.open_socket` the connected socket (through the proxy's CONNECT; blocking);
:func:`encode_request_headers` checks and encodes extra request headers and
:func:`default_ssl_context` is the shared TLS default. The Dialer uses the same ones.

Not done: redirects (a 3xx raises :class:`~wsio.InvalidStatusError`, whose ``headers``
hold ``Location``), interim 1xx responses before the 101, SOCKS and ``https://``
proxies (an environment that sets one, e.g. ``ALL_PROXY=socks5://...``, makes a dial
that would use it raise LocalProtocolError "unsupported proxy scheme"; ``proxy=None``
connects directly).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import socket
import ssl as ssl_module
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from wsio._engine.handshake import ACCEPTED, NEED_DATA, ClientHandshake
from wsio._engine.http import HeadError, ResponseParser
from wsio._engine.httphead import Option, check_value, format_options, is_token
from wsio._engine.limits import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_LINE,
    DEFAULT_OPEN_TIMEOUT,
)
from wsio.conn import Conn, SocketLike
from wsio.exceptions import (
    HandshakeTimeoutError,
    IncompleteHandshakeError,
    InvalidStatusError,
    LocalProtocolError,
    MalformedResponseError,
    ProxyError,
)
from wsio.handshake import Handshake, HeadersLike, encode_headers

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DebugDialer",
    "Dialer",
    "Proxy",
    "Target",
    "default_ssl_context",
    "dial",
    "encode_request_headers",
    "parse_url",
]

#: The most bytes of a non-101 response's body kept in InvalidStatusError.body.
DEFAULT_MAX_BODY_SIZE = 65536

# Headers the Dialer writes itself; a caller sets them through the matching keyword.
_OWN_HEADERS = {
    "host": "host=",
    "upgrade": None,
    "connection": None,
    "sec-websocket-key": None,
    "sec-websocket-version": None,
    "sec-websocket-protocol": "subprotocols=",
    "sec-websocket-extensions": "extensions=",
}
# RFC 3986 §2.2 reserved and §2.3 unreserved characters, plus '%': left alone when the
# request target is percent-encoded (an IRI's non-ASCII, spaces and controls are not).
_URI_SAFE = "!#$%&'()*+,/:;=?@[]~"
_DEFAULT_PORTS = {"ws": 80, "wss": 443}


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """Where a URL says to connect, and what the request says (from :func:`parse_url`;
    immutable, so it may be kept and shared)."""

    secure: bool
    host: str  # without brackets; for connecting and for SNI
    port: int
    resource: str  # path and query, percent-encoded
    host_header: str
    unix_path: str | None
    authorization: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP CONNECT proxy (from :meth:`Dialer.proxy_for`): where it listens, and the
    ``Proxy-Authorization`` value its URL's credentials make."""

    host: str
    port: int
    authorization: str | None

    @property
    def address(self) -> str:
        """``host:port`` (an IPv6 host in brackets)."""
        return _host_port(self.host, self.port)

    def connect_request(self, target: Target) -> bytes:
        """The CONNECT request that asks this proxy for a tunnel to ``target``."""
        # RFC 9110 §9.3.6: "CONNECT server.example.com:80 HTTP/1.1 / Host:
        # server.example.com". RFC 6455 §4.1: the proxy opens a TCP connection to /host/
        # and /port/, and the client then speaks through it.
        address = _host_port(target.host, target.port)
        lines = [f"CONNECT {address} HTTP/1.1", f"Host: {address}"]
        if self.authorization is not None:
            lines.append(f"Proxy-Authorization: {self.authorization}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def check_connect_response(self, parser: ResponseParser) -> None:
        """Check this proxy's complete answer to :meth:`connect_request`: ProxyError for a
        refusal, MalformedResponseError for bytes after it."""
        status = parser.status
        # RFC 9110 §15.3: "Any 2xx (Successful) response indicates that the sender (and
        # all inbound proxies) will switch to tunnel mode immediately after the response
        # header section".
        if not 200 <= status < 300:
            reason = bytes(parser.reason).decode("latin-1")
            raise ProxyError(
                f"proxy {self.address} answered {status} {reason}".rstrip(),
                status=status,
                headers=_header_list(parser),
            )
        if parser.filled > parser.end:
            # Nothing can come from the server before the client speaks (a TLS ClientHello
            # or the upgrade request), so these bytes are the proxy's mistake.
            raise MalformedResponseError(f"proxy {self.address} sent bytes after its response")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Dialer:
    """Options for opening WebSocket connections; reusable and safe to share across threads.

    Every hook's arguments (``memoryview`` slices of the response buffer) are valid only until
    the hook returns: copy what you keep. An exception a hook raises aborts the dial (the
    socket is closed) and propagates unchanged.
    """

    timeout: float | None = DEFAULT_OPEN_TIMEOUT
    """Seconds for connect + proxy + TLS + handshake together; None waits forever."""
    subprotocols: Sequence[str] = ()
    """Subprotocols offered, in order of preference (``Sec-WebSocket-Protocol``)."""
    extensions: Sequence[Option] = ()
    """Extensions offered, in order (``Sec-WebSocket-Extensions``)."""
    headers: HeadersLike | None = None
    """Extra request headers (Origin, Authorization, Cookie, ...): a mapping, pairs or lines."""
    host: str | None = None
    """The Host header's value, instead of the URL's host and port."""
    ssl: ssl_module.SSLContext | None = None
    """TLS settings for ``wss://``; default ``ssl.create_default_context()``."""
    server_hostname: str | None = None
    """The TLS server name (SNI and certificate check), instead of the URL's host."""
    proxy: str | bool | None = True
    """True: the proxy from the environment; a URL: that proxy; None/False: none."""
    unix_path: str | None = None
    """Connect to this Unix socket instead of the URL's host and port."""
    create_connection: Callable[[tuple[str, int], float | None], socket.socket] | None = None
    """Opens TCP connections like ``socket.create_connection(address, timeout)`` (to the
    proxy when there is one)."""
    wrap_socket: Callable[[socket.socket], SocketLike] | None = None
    """Called with the connected (TLS) socket before the handshake; returns what to use."""
    on_header: Callable[[memoryview, memoryview], object] | None = None
    """``on_header(name, value)`` for each non-WebSocket response header of a 101."""
    on_status_error: Callable[[int, str, memoryview], object] | None = None
    """``on_status_error(status, reason, response)`` before a non-101 raises."""
    accept_extensions: (
        Callable[[Sequence[Option], list[Option]], Sequence[Option] | None] | None
    ) = None
    """``accept_extensions(offered, accepted)``: check the server's choice; may replace it."""
    on_request_bytes: Callable[[bytes], object] | None = None
    """Debug: called with the raw request head before it is sent."""
    on_response_bytes: Callable[[memoryview], object] | None = None
    """Debug: called with the raw response head (and body, for a non-101) once read."""
    max_line: int = DEFAULT_MAX_LINE
    """Longest status or header line in the response."""
    max_headers: int = DEFAULT_MAX_HEADERS
    """Most header fields in the response."""
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    """Largest response head; also the size of the buffer the response is read into."""
    max_body_size: int = DEFAULT_MAX_BODY_SIZE
    """Most bytes of a non-101 response body to read (given a Content-Length)."""
    keep_timeout: bool = False
    """After the handshake, leave ``timeout`` on the socket: every later read or write
    then raises TimeoutError after that many seconds without progress. Off by default:
    the connection blocks (a dialed socket) or gets its own timeout back (``sock=``)."""
    _extra: bytes = dataclasses.field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Check what can be checked once, so that a bad option fails here, not mid-dial;
        # sequences are frozen so that the Dialer stays what it was when it was checked.
        object.__setattr__(self, "subprotocols", tuple(self.subprotocols))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        headers = self.headers
        if headers is not None and not isinstance(headers, (Mapping, str, bytes)):
            object.__setattr__(self, "headers", tuple(headers))
        for protocol in self.subprotocols:
            if not is_token(protocol):
                raise LocalProtocolError(f"subprotocol is not a token: {protocol!r}")
        if self.extensions:
            format_options(self.extensions)  # raises on a name or value it cannot write
        # Encoded once: an iterator of pairs can be read only once, and it saves work per dial.
        object.__setattr__(self, "_extra", encode_request_headers(self.headers))
        if self.host is not None:
            check_value(self.host, "host")
        if isinstance(self.proxy, str):
            _parse_proxy(self.proxy)

    # -- public API ------------------------------------------------------------------

    def dial(self, url: str, *, sock: socket.socket | None = None) -> tuple[Conn, Handshake]:
        """Connect to ``url`` and run the opening handshake; return the connection and result.

        ``sock`` is an already connected socket to use instead of connecting (TLS still
        applies for ``wss://``). Raises a HandshakeError subclass, OSError or ssl.SSLError.
        """
        target = parse_url(url, self.unix_path)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        restore: float | None = None
        stream: SocketLike | None = None
        try:
            if sock is None:
                sock = self.open_socket(target, deadline)
            else:
                restore = sock.gettimeout()
            if target.secure:
                sock = self._start_tls(sock, target, deadline)
            stream = sock if self.wrap_socket is None else self.wrap_socket(sock)
            conn, handshake = self._handshake(stream, target, deadline)
            stream.settimeout(self.timeout if self.keep_timeout else restore)
            return conn, handshake
        except BaseException:
            if stream is not None:
                stream.close()
            if sock is not None:
                # Also when TLS failed: the TCP socket under it (closing twice is harmless).
                sock.close()
            raise

    def upgrade(self, sock: SocketLike, url: str) -> tuple[Conn, Handshake]:
        """Run the opening handshake for ``url`` on a connected stream (no connect, no TLS).

        The socket's timeout is restored afterwards; it is closed if the handshake fails.
        """
        target = parse_url(url, self.unix_path)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        restore = sock.gettimeout()
        try:
            conn, handshake = self._handshake(sock, target, deadline)
            sock.settimeout(self.timeout if self.keep_timeout else restore)
            return conn, handshake
        except BaseException:
            sock.close()
            raise

    # -- connecting ------------------------------------------------------------------

    def open_socket(self, target: Target, deadline: float | None = None) -> socket.socket:
        """Connect to ``target`` (its Unix socket, or TCP with TCP_NODELAY), through the
        proxy :meth:`proxy_for` picks with its CONNECT exchange done; blocking, bounded by
        ``deadline`` (``time.monotonic()``). No TLS yet. The socket is the caller's."""
        if target.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(_remaining(deadline))
                _timed(sock.connect, target.unix_path)
            except BaseException:
                sock.close()
                raise
            return sock
        proxy = self.proxy_for(target)
        host, port = (target.host, target.port) if proxy is None else (proxy.host, proxy.port)
        factory = self.create_connection or socket.create_connection
        sock = _timed(factory, (host, port), _remaining(deadline))
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                # Frames are small and latency matters more than packet count.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None:
                self._proxy_connect(sock, proxy, target, deadline)
        except BaseException:
            sock.close()
            raise
        return sock

    def proxy_for(self, target: Target) -> Proxy | None:
        """The proxy a connection to ``target`` goes through, or None: the ``proxy``
        option's URL, or (``proxy=True``) the environment's for the target's scheme,
        never for a loopback host or a Unix socket. LocalProtocolError for a bad URL."""
        if self.proxy is None or self.proxy is False:
            return None
        if isinstance(self.proxy, str):
            return _parse_proxy(self.proxy)
        url = _environment_proxy(target)
        return None if url is None else _parse_proxy(url, "from the environment")

    def _proxy_connect(
        self, sock: socket.socket, proxy: Proxy, target: Target, deadline: float | None
    ) -> None:
        sock.settimeout(_remaining(deadline))
        _timed(sock.sendall, proxy.connect_request(target))
        proxy.check_connect_response(self._read_head(sock, deadline, what="proxy response"))

    def _start_tls(
        self, sock: socket.socket, target: Target, deadline: float | None
    ) -> ssl_module.SSLSocket:
        context = self.ssl if self.ssl is not None else default_ssl_context()
        hostname = self.server_hostname
        if hostname is None:
            hostname = "localhost" if target.unix_path is not None else target.host
        sock.settimeout(_remaining(deadline))
        tls: ssl_module.SSLSocket = _timed(context.wrap_socket, sock, server_hostname=hostname)
        return tls

    # -- the handshake -----------------------------------------------------------------

    def _handshake(
        self, sock: SocketLike, target: Target, deadline: float | None
    ) -> tuple[Conn, Handshake]:
        handshake = ClientHandshake(
            resource=target.resource,
            host=self.host if self.host is not None else target.host_header,
            subprotocols=self.subprotocols,
            extensions=self.extensions,
            headers=self._extra,
            authorization=target.authorization,
            on_header=self.on_header,
            accept_extensions=self.accept_extensions,
            on_head=None if self.on_response_bytes is None else self._on_101_head,
            max_line=self.max_line,
            max_headers=self.max_headers,
            max_head_size=self.max_head_size,
        )
        request = handshake.data_to_send()
        if self.on_request_bytes is not None:
            self.on_request_bytes(request)
        sock.settimeout(_remaining(deadline))
        _timed(sock.sendall, request)
        while handshake.state == NEED_DATA:
            sock.settimeout(_remaining(deadline))
            count = _timed(sock.recv_into, handshake.get_buffer())
            if count == 0:
                handshake.receive_eof()
                break
            handshake.buffer_updated(count)
        if handshake.state != ACCEPTED:
            error = handshake.error
            if isinstance(error, InvalidStatusError):
                self._status_error(sock, handshake.parser, deadline)
            assert error is not None
            raise error
        result = handshake.handshake
        assert result is not None
        return Conn(sock, handshake.trailing()), result

    def _on_101_head(self, head: memoryview) -> None:
        # The debug hook sees a 101 head before the checks; any other status's head is
        # shown with its body by _status_error.
        parts = bytes(head[:64]).split(b"\n", 1)[0].split(b" ")
        if self.on_response_bytes is not None and parts[1:2] and parts[1].strip() == b"101":
            self.on_response_bytes(head)

    def _status_error(
        self, sock: SocketLike, parser: ResponseParser, deadline: float | None
    ) -> NoReturn:
        body = self._read_body(sock, parser, deadline)
        status = parser.status
        reason = bytes(parser.reason).decode("latin-1")
        if self.on_status_error is not None or self.on_response_bytes is not None:
            with memoryview(bytes(parser.buffer[: parser.end]) + body) as response:
                if self.on_response_bytes is not None:
                    self.on_response_bytes(response)
                if self.on_status_error is not None:
                    self.on_status_error(status, reason, response)
        raise InvalidStatusError(status, reason, _header_list(parser), body)

    def _read_head(self, sock: SocketLike, deadline: float | None, *, what: str) -> ResponseParser:
        """Read a response head into a fresh parser's buffer, bytes after it kept there."""
        parser = ResponseParser(
            max_line=self.max_line, max_headers=self.max_headers, max_size=self.max_head_size
        )
        try:
            while True:
                sock.settimeout(_remaining(deadline))
                count = _timed(sock.recv_into, parser.free())
                if count == 0:
                    raise IncompleteHandshakeError(
                        f"the connection closed after {parser.filled} bytes of the {what} head"
                    )
                if parser.advance(count):
                    return parser
        except HeadError as exc:
            # Over a limit or not HTTP: either way nothing more is read (memory stays
            # bounded by max_head_size however long the peer keeps sending).
            raise MalformedResponseError(f"{what}: {exc}") from None

    def _read_body(self, sock: SocketLike, parser: ResponseParser, deadline: float | None) -> bytes:
        """Up to max_body_size bytes of the body of an error response, for the exception.

        With a Content-Length, reads until it (or the limit, the deadline or the end of the
        stream); without one only the bytes that came with the head, since the server may
        keep the connection open.
        """
        received = parser.trailing()
        length = parser.get(b"content-length")
        want = len(received)
        if length is not None and length.strip().isdigit():
            want = int(length)
        want = min(want, self.max_body_size)
        body = bytearray(received[:want])
        try:
            while len(body) < want:
                chunk = bytearray(want - len(body))
                sock.settimeout(_remaining(deadline))
                count = sock.recv_into(chunk)
                if count == 0:
                    break
                body += chunk[:count]
        except (OSError, HandshakeTimeoutError):
            pass  # the status is the error to report; a partial body is fine
        return bytes(body)


class DebugDialer:
    """A :class:`Dialer` that shows the raw handshake bytes (gobwas/ws ``DebugDialer``).

    ``on_request(raw)`` gets the request head as sent; ``on_response(raw)`` the response
    head as received (with the body read for a non-101), valid until it returns.
    """

    def __init__(
        self,
        dialer: Dialer | None = None,
        *,
        on_request: Callable[[bytes], object] | None = None,
        on_response: Callable[[memoryview], object] | None = None,
    ) -> None:
        self.dialer = dataclasses.replace(
            dialer if dialer is not None else Dialer(),
            on_request_bytes=on_request,
            on_response_bytes=on_response,
        )

    def dial(self, url: str, *, sock: socket.socket | None = None) -> tuple[Conn, Handshake]:
        """:meth:`Dialer.dial`, calling the debug hooks with the raw bytes."""
        return self.dialer.dial(url, sock=sock)

    def upgrade(self, sock: SocketLike, url: str) -> tuple[Conn, Handshake]:
        """:meth:`Dialer.upgrade`, calling the debug hooks with the raw bytes."""
        return self.dialer.upgrade(sock, url)


def dial(url: str, *, sock: socket.socket | None = None, **options: Any) -> tuple[Conn, Handshake]:
    """Connect to ``url`` and run the opening handshake with ``Dialer(**options)``.

    Returns the connection (read-ahead frames kept) and the handshake result.
    """
    return Dialer(**options).dial(url, sock=sock)


# -- helpers -----------------------------------------------------------------------------


def _remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline``; raises HandshakeTimeoutError when none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise HandshakeTimeoutError("the opening handshake timed out")
    return left


_T = TypeVar("_T")


def _timed(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call ``func``, turning a socket timeout into HandshakeTimeoutError."""
    try:
        return func(*args, **kwargs)
    except TimeoutError as exc:
        if isinstance(exc, HandshakeTimeoutError):
            raise
        raise HandshakeTimeoutError(f"the opening handshake timed out ({exc})") from exc


@functools.lru_cache(maxsize=1)
def default_ssl_context() -> ssl_module.SSLContext:
    """``ssl.create_default_context()``, made once per process and shared (verification
    on): a ``wss://`` connection's TLS settings when none are given."""
    # Loading the system CA store costs milliseconds: do it once per process.
    return ssl_module.create_default_context()


def _host_port(host: str, port: int) -> str:
    # RFC 3986 §3.2.2: an IPv6 literal is written in brackets.
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@functools.lru_cache(maxsize=256)
def parse_url(url: str, unix_path: str | None = None) -> Target:
    """Split a ws/wss/ws+unix/wss+unix URL into what a client needs (cached: immutable);
    ``unix_path`` connects there instead. LocalProtocolError for what is not one."""
    try:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss", "ws+unix", "wss+unix"):
            raise LocalProtocolError(f"not a WebSocket URL (ws://, wss://): {url!r}")
        # RFC 6455 §3: "Fragment identifiers are meaningless in the context of WebSocket
        # URIs and MUST NOT be used on these URIs."
        if parts.fragment or url.endswith("#"):
            raise LocalProtocolError(f"a WebSocket URL has no fragment: {url!r}")
        secure = scheme.startswith("wss")
        # RFC 6455 §3: "resource-name" is the path ("/" if empty) and "?" and the query.
        resource = parts.path or "/"
        if parts.query:
            resource += "?" + parts.query
        # Non-ASCII (an IRI), spaces and control characters are percent-encoded, so that
        # nothing in the URL can end the request line.
        resource = urllib.parse.quote(resource, safe=_URI_SAFE)
        authorization = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            authorization = f"Basic {token}"
        if scheme.endswith("+unix"):
            path = urllib.parse.unquote(parts.netloc.rpartition("@")[2])
            if not path:
                raise LocalProtocolError(f"no socket path in {url!r}")
            return Target(secure, "localhost", 0, resource, "localhost", path, authorization)
        host = parts.hostname
        if not host:
            raise LocalProtocolError(f"no host in {url!r}")
        port = parts.port
    except ValueError as exc:  # urlsplit's and .port's complaints
        if isinstance(exc, LocalProtocolError):
            raise
        raise LocalProtocolError(f"invalid WebSocket URL {url!r}: {exc}") from None
    if not host.isascii():
        host = host.encode("idna").decode("ascii")
    default = _DEFAULT_PORTS["wss" if secure else "ws"]
    port = default if port is None else port
    # RFC 6455 §4.1: "The request MUST contain a |Host| header field whose value contains
    # /host/ plus optionally ":" followed by /port/ (when not using the default port)."
    bracketed = f"[{host}]" if ":" in host else host
    host_header = bracketed if port == default else f"{bracketed}:{port}"
    return Target(secure, host, port, resource, host_header, unix_path, authorization)


def _parse_proxy(url: str, origin: str = "") -> Proxy:
    """Check and split an ``http://[user:pass@]host[:port]`` proxy URL."""
    where = f" {origin}" if origin else ""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LocalProtocolError(f"invalid proxy URL{where} {url!r}: {exc}") from None
    if parts.scheme.lower() != "http":
        # SOCKS and TLS-to-the-proxy (https://) are not implemented: say so plainly rather
        # than fail later with a protocol error from the proxy's answer.
        hint = " (set proxy=None to connect directly)" if origin else ""
        raise LocalProtocolError(
            f"unsupported proxy scheme {parts.scheme.lower() or 'none'!r}: proxy{where} "
            f"{url!r}; only http:// proxies (HTTP CONNECT) are supported{hint}"
        )
    if not parts.hostname:
        raise LocalProtocolError(f"proxy URL{where} has no host: {url!r}")
    authorization = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    return Proxy(parts.hostname, 80 if port is None else port, authorization)


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _environment_proxy(target: Target) -> str | None:
    """The proxy URL the environment sets for ``target``, or None."""
    if target.unix_path is not None or _is_loopback(target.host):
        return None
    proxies = urllib.request.getproxies()
    if not proxies:
        return None
    if urllib.request.proxy_bypass(_host_port(target.host, target.port)):
        return None
    # RFC 6455 §4.1: "a client with no explicit WebSocket proxy configuration ... SHOULD
    # prefer a SOCKS proxy over HTTPS proxy, and HTTPS over HTTP" (SOCKS: unsupported).
    schemes = ("wss", "https", "all") if target.secure else ("ws", "https", "http", "all")
    for scheme in schemes:
        url = proxies.get(scheme)
        if url:
            return url
    return None


def encode_request_headers(headers: HeadersLike | None) -> bytes:
    """A client's extra request headers (a mapping, pairs or lines) as CRLF-terminated
    lines; LocalProtocolError for what can't be sent or is the handshake's own."""
    # Names must be tokens and values free of CR, LF and other controls, which would end
    # the header and let a value inject another (request splitting).
    raw = encode_headers(headers, "request header")
    for line in raw.split(b"\r\n")[:-1]:
        name = line.partition(b":")[0].decode("ascii")
        own = _OWN_HEADERS.get(name.lower(), "")
        if own != "":
            hint = f"; use {own}" if own else ""
            raise LocalProtocolError(f"the Dialer writes {name} itself{hint}")
    return raw


def _header_list(parser: ResponseParser) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in parser.headers()]
