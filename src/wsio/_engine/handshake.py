"""The opening handshake (RFC 6455 §4) without I/O: bytes in, bytes to send out, a result.

Two objects, one per connection, that an I/O layer drives and that never read a socket
or a clock (the blocking :class:`~wsio.Upgrader` and :class:`~wsio.Dialer` drive them
today, an asyncio protocol can drive them from ``data_received``):

:class:`ServerHandshake`
    Request bytes in, incrementally (``receive_data(data)``, or ``get_buffer()`` +
    ``buffer_updated(n)`` to read straight into the head buffer), with the head limits.
    Once the head is complete the §4.2.1 checks and the hooks of its
    :class:`ServerRules` decide: :attr:`~ServerHandshake.state` becomes ``ACCEPTED``
    (:attr:`~ServerHandshake.handshake` holds the result) or ``REJECTED``
    (:attr:`~ServerHandshake.rejection` holds the status), and :meth:`data_to_send`
    returns the 101 or the refusal. Bytes after the head are never parsed: the input
    methods return how many bytes belonged to the head, and :meth:`trailing` shows the
    rest if they were fed.
:class:`ClientHandshake`
    Options in, :meth:`~ClientHandshake.data_to_send` is the request; response bytes in
    the same way; the §4.1 checks decide ``ACCEPTED`` (subprotocol, extensions) or
    ``FAILED`` (:attr:`~ClientHandshake.error`, an InvalidResponseError).

The driver owns time: a deadline for the whole handshake (``DEFAULT_HANDSHAKE_TIMEOUT``)
is its job, as are closing the connection and what to do with a refusal after sending it.
An event-loop driver, for instance::

    def data_received(self, data):
        taken = self.handshake.receive_data(data)       # copies into the head buffer
        if self.handshake.state == NEED_DATA:
            return                                      # (the deadline timer keeps running)
        self.transport.write(self.handshake.data_to_send())
        if self.handshake.state == REJECTED:
            self.transport.close()
        else:
            self.start_websocket(self.handshake.handshake, data[taken:])

Views (:meth:`~ServerHandshake.trailing`, :meth:`~ServerHandshake.request_head`, what
``get_buffer`` returns) point into the parser's buffer: valid until the parser is reset
or reused; copy what you keep.

:class:`ServerRules` holds what a server checks: the limits, the hooks, ``origins``. It
is the base of :class:`~wsio.Upgrader`, so one set of rules serves every way in.
"""

from __future__ import annotations

import base64
import http
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from wsio._engine.http import HeadError, HeadParser, RequestParser, ResponseParser
from wsio._engine.httphead import (
    HeaderSyntaxError,
    Option,
    accept_key,
    accept_key_bytes,
    check_value,
    format_options,
    has_token,
    is_token,
    is_valid_key,
    parse_options,
    parse_tokens,
)
from wsio._engine.limits import DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS, DEFAULT_MAX_LINE
from wsio.exceptions import (
    IncompleteHandshakeError,
    InvalidAcceptError,
    InvalidConnectionError,
    InvalidResponseError,
    InvalidStatusError,
    InvalidUpgradeError,
    LocalProtocolError,
    MalformedResponseError,
    RejectConnectionError,
    UnexpectedExtensionError,
    UnexpectedSubprotocolError,
)

__all__ = [
    "ACCEPTED",
    "FAILED",
    "NEED_DATA",
    "REJECTED",
    "Accepted",
    "ClientHandshake",
    "Handshake",
    "HeadersLike",
    "ServerHandshake",
    "ServerRules",
    "build_rejection",
    "build_response",
    "check_accepted_extensions",
    "encode_headers",
    "header_pairs",
    "hooked_request_headers",
    "hooked_response_headers",
    "reason_phrase",
]

#: States of both handshake objects.
NEED_DATA = 0
ACCEPTED = 1
REJECTED = 2  # server: the request was refused; data_to_send() holds the answer
FAILED = 3  # client: the response failed the checks, or the peer left

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


@dataclass(slots=True)
class Accepted:
    """A request that passed :func:`check_request`: the result and the 101 to send."""

    handshake: Handshake
    #: The complete ``101 Switching Protocols`` response, ready for one ``sendall``.
    response: bytes


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
    accepted = check_value(accept, "Sec-WebSocket-Accept").encode("ascii")
    return _response_101(accepted, subprotocol, extensions, encode_headers(headers))


def _response_101(
    accept: bytes, subprotocol: str | None, extensions: Sequence[Option], header_lines: bytes
) -> bytes:
    # build_response once its inputs are checked: ``accept`` computed here or checked,
    # ``header_lines`` encoded by encode_headers.
    parts = [_HEAD_101, accept, _CRLF]
    if subprotocol is not None:
        if not is_token(subprotocol):
            raise LocalProtocolError(f"subprotocol is not a token: {subprotocol!r}")
        parts += (_PROTOCOL_LINE, subprotocol.encode("ascii"), _CRLF)
    if extensions:
        parts += (_EXTENSIONS_LINE, format_options(extensions).encode("latin-1"), _CRLF)
    if header_lines:
        parts.append(header_lines)
    parts.append(_CRLF)
    return b"".join(parts)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of an HTTP ``status`` ("Error" for an unknown one)."""
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
    body = (reason or reason_phrase(status)).encode("utf-8")
    return b"".join(
        (
            f"HTTP/1.1 {status} {reason_phrase(status)}\r\n"
            "Connection: close\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n".encode("ascii"),
            encode_headers(headers),
            _CRLF,
            body,
        )
    )


def header_pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """``headers`` as ``(name, value)`` str pairs, checked as :func:`encode_headers` does."""
    raw = encode_headers(headers).decode("latin-1")
    out = []
    for line in raw.split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            out.append((name, value))
    return out


# -- the server's rules ------------------------------------------------------------------

# The built-in refusals, raised inside the checks and answered by the caller.
_VERSION_13 = (("Sec-WebSocket-Version", "13"),)
_ALLOW_GET = (("Allow", "GET"),)

# The headers the rules look at themselves, by index (HeadParser.find_name); the rest go
# to on_header. Content-Length, Transfer-Encoding and Origin go to on_header as well.
_OWN_NAMES = (
    b"host",
    b"upgrade",
    b"connection",
    b"sec-websocket-key",
    b"sec-websocket-version",
    b"sec-websocket-protocol",
    b"sec-websocket-extensions",
    b"content-length",
    b"transfer-encoding",
    b"origin",
)
_HOST = 0
_UPGRADE = 1
_CONNECTION = 2
_KEY = 3
_VERSION = 4
_PROTOCOL = 5
_EXTENSIONS = 6
_CONTENT_LENGTH = 7
_TRANSFER_ENCODING = 8
_ORIGIN = 9
_CODES = {name: code for code, name in enumerate(_OWN_NAMES)}


class _HookFailed(Exception):
    """A hook raised something other than RejectConnectionError (answered with 500)."""


def _reject(reason: str, status: int = 400, headers: Any = None) -> RejectConnectionError:
    return RejectConnectionError(reason, status=status, headers=headers)


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


def hooked_request_headers(parser: HeadParser) -> list[tuple[bytes, bytes]]:
    """The headers of an accepted request as a server's hooks saw them, in order: Host,
    and every header the rules hand ``on_header`` (names canonicalised, as it gets them).
    Owned copies."""
    headers = []
    for i, (name, value) in enumerate(parser.headers()):
        # The rules' own headers but Host and those they hand on_header as well
        # (Content-Length, Transfer-Encoding, Origin: the codes from _CONTENT_LENGTH on).
        code = parser.find_name(i, _OWN_NAMES)
        if code == _HOST:
            headers.append((b"Host", value))
        elif code < 0 or code >= _CONTENT_LENGTH:
            headers.append((_canonical(name), value))
    return headers


def hooked_response_headers(parser: HeadParser) -> list[tuple[bytes, bytes]]:
    """The headers of a 101 that are not the handshake's own (those a client's
    ``on_header`` sees), in order. Owned copies."""
    return [
        (bytes(parser.name(i)), parser.value_bytes(i))
        for i in range(len(parser))
        if parser.find_name(i, _CLIENT_NAMES) < 0
    ]


def _origin_set(origins: Iterable[str | None] | None) -> frozenset[bytes | None] | None:
    """The allow-list as lower-case bytes (None kept: "no Origin header"), checked."""
    if origins is None:
        return None
    if isinstance(origins, (str, bytes)):
        raise TypeError("origins must be a sequence of origins, not one string")
    allowed: set[bytes | None] = set()
    for origin in origins:
        if origin is None:
            allowed.add(None)
            continue
        if not isinstance(origin, str):
            raise TypeError(f"an origin is a str or None, not {type(origin).__name__}")
        check_value(origin, "origin")
        allowed.add(origin.strip(" \t").lower().encode("latin-1"))
    return frozenset(allowed)


class ServerRules:
    """What a server checks in an opening-handshake request, and how it answers.

    The keyword arguments are :class:`~wsio.Upgrader`'s (see there); this class holds
    them and the checks, with no I/O. An instance is immutable after construction and
    safe to share between threads.
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
        self._header_pairs = header_pairs(header)
        self._origins = _origin_set(origins)
        self.origins: tuple[str | None, ...] | None = None if origins is None else tuple(origins)
        if max_head_size < 16 or max_line < 16 or max_headers < 0:
            raise ValueError("Upgrader limits are too small")
        self.max_line = max_line
        self.max_headers = max_headers
        self.max_head_size = max_head_size
        self.hook_bytes = hook_bytes
        self._rejections: dict[tuple[int, str], bytes] = {}

    def new_parser(self) -> RequestParser:
        """A request-head parser with these rules' limits (one head buffer of its own)."""
        return RequestParser(
            max_line=self.max_line, max_headers=self.max_headers, max_size=self.max_head_size
        )

    # -- public checks -----------------------------------------------------------------

    def check(
        self,
        method: str | bytes,
        headers: Iterable[tuple[str | bytes, str | bytes]],
        *,
        target: str | bytes = "/",
        version: tuple[int, int] = (1, 1),
    ) -> Accepted:
        """Check an already parsed request with these rules and hooks.

        Returns :class:`Accepted` (with the 101 response to send), or raises
        RejectConnectionError with the status, reason and headers to answer with (the
        ``header`` option included); nothing is written.
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
            handshake, response = self._check(raw_method, raw_target, version, None, pairs)
        except (RejectConnectionError, _HookFailed) as exc:
            out = self.refusal(exc)[0]
            raise out from out.__cause__ or exc.__cause__
        return Accepted(handshake, response)

    def check_head(self, parser: RequestParser) -> Accepted:
        """:meth:`check` for a request head ``parser`` completed, reading it in place.

        Hooks get views into the parser's buffer (or ``bytes`` with ``hook_bytes``);
        header names passed to ``on_header`` are canonicalised in the buffer.
        """
        try:
            handshake, response = self._check(
                parser.method, parser.target, parser.version, parser, None
            )
        except (RejectConnectionError, _HookFailed) as exc:
            out = self.refusal(exc)[0]
            raise out from out.__cause__ or exc.__cause__
        return Accepted(handshake, response)

    def answer(
        self, parser: RequestParser
    ) -> tuple[Handshake | None, RejectConnectionError | None, bytes]:
        """Check a completed request head: ``(handshake, None, 101)`` or ``(None, refusal,
        response)``, the refusal as :meth:`refusal` makes it (its ``__cause__`` chained)."""
        try:
            handshake, response = self._check(
                parser.method, parser.target, parser.version, parser, None
            )
        except (RejectConnectionError, _HookFailed) as exc:
            out, response = self.refusal(exc)
            if out.__cause__ is None:
                out.__cause__ = exc.__cause__
            return None, out, response
        return handshake, None, response

    def refusal(self, exc: BaseException) -> tuple[RejectConnectionError, bytes]:
        """The exception to raise and the response to send for a refused request.

        ``exc`` is a RejectConnectionError (a hook's or the checks'; a status outside
        400-599, or headers that cannot be written, become 500) or any other exception,
        which a hook raised (500, its text never sent). The exception returned carries
        every header sent, the ``header`` option's included.
        """
        if not isinstance(exc, RejectConnectionError):
            exc = _reject("", 500)
        status = exc.status if 400 <= exc.status <= 599 else 500
        reason = exc.reason
        cause: BaseException | None = None
        try:
            if exc.headers:
                response = build_rejection(
                    status, reason, self._header + encode_headers(exc.headers)
                )
            else:
                response = self._cached_rejection(status, reason)
            headers = self._header_pairs + list(exc.headers)
        except LocalProtocolError as bad:
            # A hook's rejection headers cannot be written safely: refuse with 500.
            status, reason, cause = 500, "", bad
            response = self._cached_rejection(status, reason)
            headers = list(self._header_pairs)
        out = RejectConnectionError(reason or reason_phrase(status), status=status, headers=headers)
        if cause is not None:
            out.__cause__ = cause
        return out, response

    def _cached_rejection(self, status: int, reason: str) -> bytes:
        key = (status, reason)
        cached = self._rejections.get(key)
        if cached is None:
            cached = build_rejection(status, reason, self._header)
            if len(self._rejections) < 64:
                self._rejections[key] = cached
        return cached

    # -- the checks, shared by every entry point -----------------------------------------

    def _check(
        self,
        method: bytes,
        target: bytes,
        version: tuple[int, int],
        parser: RequestParser | None,
        pairs: list[tuple[bytes, bytes]] | None,
    ) -> tuple[Handshake, bytes]:
        """Check one request; return the Handshake and the 101 response bytes.

        The headers are read from ``parser`` in place, or from ``pairs``. Raises
        RejectConnectionError or _HookFailed.
        """
        # RFC 6455 §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        if version[0] != 1 or version[1] < 1:
            raise _reject("the WebSocket handshake needs HTTP/1.1", 505)
        if method != b"GET":
            raise _reject("the WebSocket handshake must be a GET request", 405, _ALLOW_GET)
        views = not self.hook_bytes
        if self.on_request is not None:
            if parser is not None and views:
                with memoryview(target) as uri_view:
                    _call(self.on_request, uri_view)
            else:
                _call(self.on_request, target)

        host = upgrade = connection = False
        key: bytes | None = None
        ws_version: bytes | None = None
        origin: bytes | None = None
        origins = 0
        protocols: list[bytes] = []
        extensions: list[bytes] = []
        on_header = self.on_header
        count = len(parser) if parser is not None else len(pairs or ())
        for i in range(count):
            if parser is not None:
                code = parser.find_name(i, _OWN_NAMES)
            else:
                assert pairs is not None
                code = _CODES.get(pairs[i][0].lower(), -1)
            if code < 0:
                if on_header is not None:
                    self._call_header(on_header, parser, pairs, i)
                continue
            value = parser.value_bytes(i) if parser is not None else pairs[i][1]  # type: ignore[index]
            if code == _HOST:
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
            elif code == _UPGRADE:
                # RFC 6455 §4.2.1 item 3: "An |Upgrade| header field containing the value
                # "websocket", treated as an ASCII case-insensitive value."
                upgrade = upgrade or has_token(value, "websocket")
            elif code == _CONNECTION:
                # Item 4: "A |Connection| header field that includes the token "Upgrade",
                # treated as an ASCII case-insensitive value."
                connection = connection or has_token(value, "upgrade")
            elif code == _KEY:
                # RFC 6455 §11.3.1: "The |Sec-WebSocket-Key| header field MUST NOT appear
                # more than once in an HTTP request."
                if key is not None:
                    raise _reject("more than one Sec-WebSocket-Key header")
                key = value
            elif code == _VERSION:
                # RFC 6455 §11.3.5: "MUST NOT appear more than once in an HTTP request."
                if ws_version is not None:
                    raise _reject("more than one Sec-WebSocket-Version header")
                ws_version = value
            elif code == _PROTOCOL:
                protocols.append(value)
            elif code == _EXTENSIONS:
                extensions.append(value)
            else:
                if code == _ORIGIN:
                    origin = value
                    origins += 1
                elif code == _TRANSFER_ENCODING or value.strip(b" \t") != b"0":
                    # RFC 7230 §3.3: these announce a request body, and what follows this
                    # head is the WebSocket stream: a body would be read as frames (or the
                    # frames as a body by a proxy in front). No body, then.
                    raise _reject("the upgrade request must not have a body")
                if on_header is not None:
                    self._call_header(on_header, parser, pairs, i)

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
        allowed = self._origins
        if allowed is not None:
            # RFC 6455 §10.2: "If the |Origin| value is not acceptable to the server, then
            # it SHOULD respond to the WebSocket handshake with a reply containing HTTP
            # 403 Forbidden". Browsers attach cookies to cross-site handshakes and no
            # same-origin policy applies (cross-site WebSocket hijacking): an exact match
            # of the whole origin, never a prefix or suffix. RFC 6454 §7.3: at most one.
            if origins > 1:
                raise _reject("more than one Origin header", 403)
            wanted = None if origin is None else origin.strip(b" \t").lower()
            if wanted not in allowed:
                raise _reject("origin not allowed", 403)

        subprotocol = self._select_subprotocol(protocols)
        accepted = self._negotiate_extensions(extensions)
        extra: HeadersLike | None = None
        if self.on_before_upgrade is not None:
            extra = _call(self.on_before_upgrade)
        try:
            response = _response_101(
                accept_key_bytes(key),
                subprotocol,
                accepted,
                self._header + encode_headers(extra) if extra else self._header,
            )
        except LocalProtocolError as exc:
            # A hook returned something that cannot be written: a server bug (500).
            raise _HookFailed() from exc
        return Handshake(subprotocol, accepted), response

    def _call_header(
        self,
        on_header: Callable[[View, View], object],
        parser: RequestParser | None,
        pairs: list[tuple[bytes, bytes]] | None,
        i: int,
    ) -> None:
        if parser is None:
            assert pairs is not None
            name, value = pairs[i]
            _call(on_header, _canonical(name), value)
            return
        # The key is canonicalised in place in the read buffer, as gobwas/ws does.
        with parser.name(i) as key:
            key[:] = _canonical(bytes(key))
            if self.hook_bytes:
                _call(on_header, bytes(key), parser.value_bytes(i))
                return
            with parser.value(i) as value_view:
                _call(on_header, key, value_view)

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


# -- the server side, per connection -------------------------------------------------------


def _receive(handshake: Any, data: bytes | bytearray | memoryview) -> int:
    # receive_data of either side: copy into the head buffer as much as it takes at a
    # time (it grows as the head fills it) until the handshake is decided or data ends.
    src = memoryview(data)
    total = len(src)
    taken = 0
    while True:
        free = handshake.parser.free()[: total - taken]
        n = len(free)
        free[:] = src[taken : taken + n]
        used = handshake.buffer_updated(n)
        if handshake.state != NEED_DATA or n == 0 or taken + n == total:
            return int(taken + used)
        taken += n


class ServerHandshake:
    """One server-side opening handshake, fed the request bytes; no I/O, no clock.

    Feed the request with :meth:`receive_data` (copies) or :meth:`get_buffer` +
    :meth:`buffer_updated` (read straight into the head buffer); both return how many of
    the new bytes belonged to the head, so the caller knows where the WebSocket stream
    starts. When :attr:`state` leaves ``NEED_DATA``, send :meth:`data_to_send`:

    - ``ACCEPTED``: :attr:`handshake` is the result, the bytes are the 101;
    - ``REJECTED``: :attr:`rejection` is the RejectConnectionError to report (its
      ``__cause__`` is what a hook raised), the bytes are the refusal; close afterwards.

    :meth:`receive_eof` before that makes the state ``FAILED`` (:attr:`error`).
    ``parser`` may be a pooled :class:`RequestParser` with the rules' limits (it is reset).
    ``on_head(head)`` sees the raw request head before the checks (debugging; a view
    valid until it returns).
    """

    def __init__(
        self,
        rules: ServerRules,
        parser: RequestParser | None = None,
        *,
        on_head: Callable[[memoryview], object] | None = None,
    ) -> None:
        if parser is None:
            parser = rules.new_parser()
        else:
            parser.reset()
        self.rules = rules
        self.on_head = on_head
        #: The request-head parser; its buffer holds the head (and any bytes fed after it).
        self.parser = parser
        self.state = NEED_DATA
        self.handshake: Handshake | None = None
        self.rejection: RejectConnectionError | None = None
        self.error: BaseException | None = None
        self._send = b""

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view of the free part of the head buffer (at most ``sizehint`` bytes).

        Write received bytes at its start, then call :meth:`buffer_updated`.
        """
        free = self.parser.free()
        if 0 < sizehint < len(free):
            return free[:sizehint]
        return free

    def buffer_updated(self, nbytes: int) -> int:
        """``nbytes`` were written into :meth:`get_buffer`; returns how many were the head's.

        The others (pipelined frames) are :meth:`trailing`.
        """
        parser = self.parser
        if self.state != NEED_DATA:
            raise LocalProtocolError("the handshake is already decided")
        before = parser.filled
        try:
            if not parser.advance(nbytes):
                return nbytes
        except HeadError as exc:
            self._decide((None, *self.rules.refusal(_reject(str(exc), exc.status))))
            return nbytes
        if self.on_head is not None:
            with self.request_head() as head:
                self.on_head(head)
        self._decide(self.rules.answer(parser))
        return parser.end - before

    def receive_data(self, data: bytes | bytearray | memoryview) -> int:
        """Copy ``data`` in and parse it; returns how many bytes belonged to the head.

        ``data[returned:]`` is the start of the WebSocket stream (kept by the caller).
        """
        return _receive(self, data)

    def receive_eof(self) -> None:
        """The peer ended the stream before the head was complete: ``FAILED``."""
        if self.state == NEED_DATA:
            self.state = FAILED
            self.error = IncompleteHandshakeError(
                "the peer closed the connection during the handshake"
            )

    def data_to_send(self) -> bytes:
        """The response to send (101 or refusal) once decided, else ``b""``; returned once."""
        data, self._send = self._send, b""
        return data

    def trailing(self) -> memoryview:
        """Bytes fed after the head (a view into the parser's buffer; empty if none)."""
        return self.parser.trailing()

    def request_head(self) -> memoryview:
        """The request head as received, up to the empty line (a view; empty until parsed)."""
        parser = self.parser
        with memoryview(parser.buffer) as whole:
            return whole[: max(parser.end, 0)]

    def _decide(self, answer: tuple[Handshake | None, RejectConnectionError | None, bytes]) -> None:
        self.handshake, self.rejection, self._send = answer
        self.state = ACCEPTED if self.rejection is None else REJECTED


# -- the client side, per connection -------------------------------------------------------

# RFC 7692 §7.1: the parameters a permessage-deflate response may carry.
_DEFLATE_RESPONSE_PARAMETERS = frozenset(
    ("server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits")
)


def check_accepted_extensions(offered: Sequence[Option], accepted: Sequence[Option]) -> None:
    """Fail (UnexpectedExtensionError) on an answer no offer allows; the default policy.

    RFC 6455 §4.1: "If the response includes a |Sec-WebSocket-Extensions| header field
    and this header field indicates the use of an extension that was not present in the
    client's handshake ..., the client MUST _Fail the WebSocket Connection_." An
    extension accepted twice, a parameter the offers of that extension did not carry
    (for permessage-deflate, one RFC 7692 §7.1 does not define for a response) and a
    parameter given twice fail too (RFC 7692 §7.1: "The negotiation response contains
    an extension parameter not defined for use in a response ... contains multiple
    extension parameters with the same name").
    """
    by_name: dict[str, set[str]] = {}
    for option in offered:
        names = by_name.setdefault(option.name.lower(), set())
        names.update(key.lower() for key, _ in option.parameters)
    seen: set[str] = set()
    for option in accepted:
        name = option.name.lower()
        allowed = by_name.get(name)
        if allowed is None:
            raise UnexpectedExtensionError(f"server accepted {option.name[:64]!r}, not offered")
        if name in seen:
            raise UnexpectedExtensionError(f"server accepted {option.name[:64]!r} twice")
        seen.add(name)
        if name == "permessage-deflate":
            # RFC 7692 §7.1.2.2: client_max_window_bits only in answer to an offer of it.
            allowed = set(_DEFLATE_RESPONSE_PARAMETERS) | (allowed & {"client_max_window_bits"})
        keys: set[str] = set()
        for key, _ in option.parameters:
            lowered = key.lower()
            if lowered not in allowed:
                raise UnexpectedExtensionError(
                    f"server answered {option.name[:64]!r} with parameter {key[:64]!r},"
                    " which the offer does not allow"
                )
            if lowered in keys:
                raise UnexpectedExtensionError(
                    f"server answered {option.name[:64]!r} with {key[:64]!r} twice"
                )
            keys.add(lowered)


def _shown(values: list[memoryview]) -> str:
    """Header values for an error message: at most 3, each cut to 64 bytes."""
    if not values:
        return "missing"
    shown = [bytes(value[:64]) for value in values[:3]]
    return repr(shown) + (f" (+{len(values) - 3} more)" if len(values) > 3 else "")


class ClientHandshake:
    """One client-side opening handshake: the request to send, the response to check.

    ``resource`` is the request target (path and query, already percent-encoded),
    ``host`` the Host value, ``key`` the Sec-WebSocket-Key (a fresh random one if None:
    the only randomness; no clock, no I/O). ``headers`` are extra request lines, already
    checked and CRLF-terminated (``encode_headers``).

    Send :meth:`data_to_send`, then feed the response as :class:`ServerHandshake` is fed.
    When :attr:`state` leaves ``NEED_DATA`` it is ``ACCEPTED`` (:attr:`handshake`; the
    bytes after the 101 head, the first frames, are :meth:`trailing`) or ``FAILED``
    (:attr:`error`: an InvalidResponseError; for a status other than 101 an
    InvalidStatusError whose body is the bytes that came with the head).

    ``on_header(name, value)`` sees each non-WebSocket header of a 101 (views valid until
    it returns); ``accept_extensions(offered, accepted)`` replaces the default extension
    policy (:func:`check_accepted_extensions`) and may return the list to use;
    ``on_head(head)`` sees the raw response head before the checks (debugging). An exception a
    hook raises propagates from the feeding call.
    """

    def __init__(
        self,
        *,
        resource: str,
        host: str,
        key: str | None = None,
        subprotocols: Sequence[str] = (),
        extensions: Sequence[Option] = (),
        headers: bytes = b"",
        authorization: str | None = None,
        on_header: Callable[[memoryview, memoryview], object] | None = None,
        accept_extensions: (
            Callable[[Sequence[Option], list[Option]], Sequence[Option] | None] | None
        ) = None,
        on_head: Callable[[memoryview], object] | None = None,
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    ) -> None:
        if key is None:
            # RFC 6455 §4.1: "a nonce consisting of a randomly selected 16-byte value that
            # has been base64-encoded".
            key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.key = key
        self.subprotocols = tuple(subprotocols)
        self.extensions = tuple(extensions)
        self.on_header = on_header
        self.accept_extensions = accept_extensions
        self.on_head = on_head
        #: The response-head parser; its buffer holds the head and the bytes after it.
        self.parser = ResponseParser(
            max_line=max_line, max_headers=max_headers, max_size=max_head_size
        )
        self.state = NEED_DATA
        self.handshake: Handshake | None = None
        self.error: BaseException | None = None
        self._send = self._request(resource, host, headers, authorization)

    def _request(self, resource: str, host: str, extra: bytes, authorization: str | None) -> bytes:
        # RFC 6455 §4.1: "The method of the request MUST be GET, and the HTTP version MUST
        # be at least 1.1." ... "The request MUST contain a |Host| header field" ... "an
        # |Upgrade| header field whose value MUST include the "websocket" keyword" ... "a
        # |Connection| header field whose value MUST include the "Upgrade" token" ... "a
        # header field with the name |Sec-WebSocket-Key|" ... "|Sec-WebSocket-Version|.
        # The value of this header field MUST be 13."
        head = (
            f"GET {resource} HTTP/1.1\r\n"
            f"Host: {host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
        )
        if self.subprotocols:
            head += f"Sec-WebSocket-Protocol: {', '.join(self.subprotocols)}\r\n"
        if self.extensions:
            head += f"Sec-WebSocket-Extensions: {format_options(self.extensions)}\r\n"
        if authorization is not None and b"\nauthorization:" not in b"\n" + extra.lower():
            head += f"Authorization: {authorization}\r\n"
        return head.encode("ascii") + extra + b"\r\n"

    def data_to_send(self) -> bytes:
        """The request head, the first time; ``b""`` afterwards."""
        data, self._send = self._send, b""
        return data

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view of the free part of the response buffer (at most ``sizehint``)."""
        free = self.parser.free()
        if 0 < sizehint < len(free):
            return free[:sizehint]
        return free

    def buffer_updated(self, nbytes: int) -> int:
        """``nbytes`` were written into :meth:`get_buffer`; returns how many were the head's."""
        parser = self.parser
        if self.state != NEED_DATA:
            raise LocalProtocolError("the handshake is already decided")
        before = parser.filled
        try:
            if not parser.advance(nbytes):
                return nbytes
        except HeadError as exc:
            # Over a limit or not HTTP: either way nothing more is read (memory stays
            # bounded by max_head_size however long the peer keeps sending).
            self._fail(MalformedResponseError(f"response: {exc}"))
            return nbytes
        try:
            self.handshake = self._check(parser)
            self.state = ACCEPTED
        except InvalidResponseError as exc:
            self._fail(exc)
        return parser.end - before

    def receive_data(self, data: bytes | bytearray | memoryview) -> int:
        """Copy ``data`` in and parse it; returns how many bytes belonged to the head."""
        return _receive(self, data)

    def receive_eof(self) -> None:
        """The server ended the stream before its head was complete: ``FAILED``."""
        if self.state == NEED_DATA:
            self._fail(
                IncompleteHandshakeError(
                    f"the connection closed after {self.parser.filled} bytes of the response head"
                )
            )

    def trailing(self) -> memoryview:
        """Bytes received after the head (a view into the parser's buffer)."""
        return self.parser.trailing()

    def _fail(self, error: BaseException) -> None:
        self.error = error
        self.state = FAILED

    def _check(self, parser: ResponseParser) -> Handshake:
        if self.on_head is not None:
            with memoryview(parser.buffer)[: parser.end] as head:
                self.on_head(head)
        # RFC 6455 §4.1: "If the status code received from the server is not 101, the
        # client handles the response per HTTP [RFC2616] procedures."
        if parser.status != 101:
            reason = bytes(parser.reason).decode("latin-1")
            headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in parser.headers()
            ]
            raise InvalidStatusError(parser.status, reason, headers, bytes(parser.trailing()))
        if parser.version < (1, 1) or parser.version[0] != 1:
            raise MalformedResponseError(
                f"{parser.start_line[:64]!r}: the opening handshake needs HTTP/1.1"
            )
        upgrade: list[memoryview] = []
        connection: list[memoryview] = []
        accept: list[memoryview] = []
        protocols: list[memoryview] = []
        extensions: list[memoryview] = []
        by_code = (upgrade, connection, accept, protocols, extensions)
        on_header = self.on_header
        for i in range(len(parser)):
            code = parser.find_name(i, _CLIENT_NAMES)
            if code >= 0:
                by_code[code].append(parser.value(i))
            elif on_header is not None:
                # Released on return: a view kept past the hook fails loudly, not silently.
                with parser.name(i) as name, parser.value(i) as value:
                    on_header(name, value)

        # RFC 6455 §4.1: "If the response lacks an |Upgrade| header field or the |Upgrade|
        # header field contains a value that is not an ASCII case-insensitive match for
        # the value "websocket", the client MUST _Fail the WebSocket Connection_."
        if len(upgrade) != 1 or bytes(upgrade[0]).strip(b" \t").lower() != b"websocket":
            raise InvalidUpgradeError(f"Upgrade is {_shown(upgrade)}, not websocket")
        # "If the response lacks a |Connection| header field or the |Connection| header
        # field doesn't contain a token that is an ASCII case-insensitive match for the
        # value "Upgrade", the client MUST _Fail the WebSocket Connection_."
        if not any(has_token(value, "upgrade") for value in connection):
            raise InvalidConnectionError(f"Connection is {_shown(connection)}, without upgrade")
        # "If the response lacks a |Sec-WebSocket-Accept| header field or the
        # |Sec-WebSocket-Accept| contains a value other than the base64-encoded SHA-1 of
        # the concatenation of the |Sec-WebSocket-Key| (as a string, not base64-decoded)
        # with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" but ignoring any leading
        # and trailing whitespace, the client MUST _Fail the WebSocket Connection_."
        if len(accept) != 1 or bytes(accept[0]) != accept_key(self.key).encode("ascii"):
            raise InvalidAcceptError(f"Sec-WebSocket-Accept is {_shown(accept)}")
        accepted: list[Option] = []
        try:
            for value in extensions:
                accepted.extend(parse_options(value))
        except HeaderSyntaxError as exc:
            raise MalformedResponseError(f"Sec-WebSocket-Extensions: {exc}") from None
        if self.accept_extensions is not None:
            offered = {option.name.lower() for option in self.extensions}
            for option in accepted:
                if option.name.lower() not in offered:
                    raise UnexpectedExtensionError(
                        f"server accepted {option.name[:64]!r}, not offered"
                    )
            replaced = self.accept_extensions(self.extensions, accepted)
            if replaced is not None:
                accepted = list(replaced)
        else:
            check_accepted_extensions(self.extensions, accepted)
        # "If the response includes a |Sec-WebSocket-Protocol| header field and this header
        # field indicates the use of a subprotocol that was not present in the client's
        # handshake (the server has indicated a subprotocol not requested by the client),
        # the client MUST _Fail the WebSocket Connection_."
        subprotocol: str | None = None
        if protocols:
            chosen = bytes(protocols[0]).decode("latin-1")
            if len(protocols) != 1 or chosen not in self.subprotocols:
                raise UnexpectedSubprotocolError(
                    f"server chose {_shown(protocols)}, offered {list(self.subprotocols)}"
                )
            subprotocol = chosen
        return Handshake(subprotocol=subprotocol, extensions=accepted)


# The response headers the client checks, by index into ClientHandshake._check's lists.
_CLIENT_NAMES = (
    b"upgrade",
    b"connection",
    b"sec-websocket-accept",
    b"sec-websocket-protocol",
    b"sec-websocket-extensions",
)
