"""What a high-level connection is, without threads, asyncio or I/O: one source for both.

:mod:`wsio.sync` (threads) and :mod:`wsio.aio` (asyncio) drive the same
:mod:`wsio.protocol` core and differ only in how they wait. Everything else lives here,
as plain data and functions they both import:

- :class:`Options`: every option of a connection, its default (from
  :mod:`wsio._engine.limits`) and its check, and :func:`new_protocol`, which builds the
  protocol core from them and what the handshake agreed;
- :class:`PingTracker`: keepalive as data: when the next ping is due, when a pong is
  overdue, which waiters a pong answers and the latency it measures;
- :func:`closed_error`: the :class:`~wsio.ConnectionClosed` subclass a closed protocol
  stands for;
- :func:`message_kind`: what ``send`` does with what it was given;
- :class:`Backoff`: the delays between reconnection attempts, and :func:`retryable`;
- :class:`Request` and :class:`Response`: the opening handshake, as the application
  sees it afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Iterable
from typing import Any, Final, TypeVar

from wsio._engine.extensions import DEFAULT_COMPRESSION_THRESHOLD, PerMessageDeflate
from wsio._engine.handshake import hooked_request_headers, hooked_response_headers
from wsio._engine.http import RequestParser, ResponseParser
from wsio._engine.limits import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_QUEUE,
    DEFAULT_OPEN_TIMEOUT,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_WRITE_LIMIT,
)
from wsio._engine.protocol import ClientProtocol, Protocol, ServerProtocol
from wsio.exceptions import (
    ConnectionClosed,
    HandshakeError,
    InvalidStatusError,
    ProxyError,
)
from wsio.wsflate.parameters import DEFAULT_PARAMETERS, Parameters

__all__ = [
    "Backoff",
    "BINARY",
    "CLIENT_DEFLATE",
    "SERVER_DEFLATE",
    "FRAGMENTED",
    "Options",
    "PingTracker",
    "Request",
    "Response",
    "TEXT",
    "closed_error",
    "message_kind",
    "new_protocol",
    "retryable",
    "split_options",
    "sent_request",
    "sent_response",
]

_T = TypeVar("_T")

#: What ``send`` was given (see :func:`message_kind`): RFC 6455 §5.6 opcodes, and 0
#: for an iterable whose items become the frames of one message.
TEXT: Final = 1
BINARY: Final = 2
FRAGMENTED: Final = 0

_KEEPALIVE_FAILED: Final = "keepalive ping timeout"

#: What a client offers with ``compression="deflate"``: RFC 7692 §7.1.2.2 "A client MAY
#: include the "client_max_window_bits" extension parameter in an extension negotiation
#: offer" (the server may then pick a smaller window), and no context kept between its
#: own messages (no 32 KiB compressor state per idle connection).
CLIENT_DEFLATE: Final = Parameters(client_no_context_takeover=True, client_max_window_bits=True)
#: What a server accepts with: no context takeover either way, unless the offer says
#: otherwise (see :class:`wsio.wsflate.Extension`).
SERVER_DEFLATE: Final = DEFAULT_PARAMETERS


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """A high-level connection's options, checked once; every default is a named limit.

    ``compression`` is ``"deflate"`` (permessage-deflate offered or accepted, messages of
    at least ``compression_threshold`` bytes compressed) or None. ``write_limit`` is the
    high water mark of bytes a send may leave queued, or (high, low). ``None`` turns a
    timeout, the keepalive or a size limit off.
    """

    open_timeout: float | None = DEFAULT_OPEN_TIMEOUT
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    ping_interval: float | None = DEFAULT_PING_INTERVAL
    ping_timeout: float | None = DEFAULT_PING_TIMEOUT
    close_timeout: float | None = DEFAULT_CLOSE_TIMEOUT
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE
    max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE
    max_fragments: int | None = DEFAULT_MAX_FRAGMENTS
    max_queue: int | None = DEFAULT_MAX_QUEUE
    write_limit: int | tuple[int, int] = DEFAULT_WRITE_LIMIT
    compression: str | None = "deflate"
    compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD
    #: Seconds a send may make no progress (the peer reads nothing) before the
    #: connection is failed (1006, TCP closed): wsio.sync's SO_SNDTIMEO, wsio.aio's
    #: timer while the write buffer is over ``write_limit``.
    write_timeout: float | None = DEFAULT_CLOSE_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("open_timeout", "handshake_timeout", "ping_interval", "close_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, or None")
        if self.ping_timeout is not None and not self.ping_timeout > 0:
            raise ValueError("ping_timeout must be positive, or None")
        for name in ("max_message_size", "max_frame_size", "max_fragments"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, or None")
        if self.max_queue is not None and self.max_queue < 1:
            raise ValueError("max_queue must be >= 1, or None")
        high, low = self.write_limits
        if not 0 <= low <= high:
            raise ValueError("write_limit must be high >= 0, or (high, low) with 0 <= low <= high")
        if self.compression not in ("deflate", None):
            raise ValueError(f"compression must be 'deflate' or None, not {self.compression!r}")
        if self.compression_threshold < 0:
            raise ValueError("compression_threshold must be >= 0")
        if self.write_timeout is not None and not self.write_timeout > 0:
            raise ValueError("write_timeout must be positive, or None")

    @property
    def write_limits(self) -> tuple[int, int]:
        """``write_limit`` as (high, low); a single number's low mark is a quarter of it."""
        if isinstance(self.write_limit, int):
            return self.write_limit, self.write_limit // 4
        return self.write_limit


_OPTION_NAMES: Final = frozenset(field.name for field in dataclasses.fields(Options))


def split_options(options: dict[str, Any]) -> tuple[Options, dict[str, Any]]:
    """The connection's :class:`Options` out of ``options``, and the rest (a new dict)
    for the handshake (Dialer or Upgrader keywords)."""
    mine = {key: value for key, value in options.items() if key in _OPTION_NAMES}
    rest = {key: value for key, value in options.items() if key not in _OPTION_NAMES}
    return Options(**mine), rest


def new_protocol(
    client: bool, options: Options, deflate: Parameters | None, streaming: bool = False
) -> Protocol:
    """The protocol core for one connection: the limits of ``options`` and, when the
    handshake agreed on permessage-deflate, its ``deflate`` parameters; ``streaming``
    gives data as Chunk events (wsio.sync assembles messages itself)."""
    extensions = (
        [PerMessageDeflate(deflate, threshold=options.compression_threshold)]
        if deflate is not None
        else []
    )
    cls = ClientProtocol if client else ServerProtocol
    return cls(
        max_frame_size=options.max_frame_size,
        max_message_size=options.max_message_size,
        max_fragments=options.max_fragments,
        extensions=extensions,
        streaming=streaming,
    )


def closed_error(protocol: Protocol) -> ConnectionClosed:
    """The exception a closed (or lost) connection raises: :class:`~wsio.ConnectionClosedOK`
    after a normal closing handshake, :class:`~wsio.ConnectionClosedError` otherwise,
    with the codes received (1006: no Close frame) and sent."""
    received, sent = protocol.close_rcvd, protocol.close_sent
    return ConnectionClosed.of(
        received.code if received is not None else 1006,
        received.reason if received is not None else "",
        sent_code=sent.code if sent is not None else None,
        sent_reason=sent.reason if sent is not None else None,
    )


def message_kind(message: object) -> int:
    """:data:`TEXT` for a ``str``, :data:`BINARY` for a bytes-like object,
    :data:`FRAGMENTED` for any other iterable (its items are one message's frames, all
    ``str`` or all bytes-like); TypeError for anything else (a dict is refused: its
    keys are rarely what the caller meant)."""
    if isinstance(message, str):
        return TEXT
    if isinstance(message, (bytes, bytearray, memoryview)):
        return BINARY
    if isinstance(message, Iterable) and not isinstance(message, dict):
        return FRAGMENTED
    raise TypeError(f"send takes str, a bytes-like object or an iterable, not {type(message)}")


def fragment_kind(fragment: object, first: int | None) -> int:
    """The kind of one item of a fragmented send; TypeError if it is not ``str`` or
    bytes-like, or not of the ``first`` item's kind (RFC 6455 §5.4: one message has one
    opcode)."""
    kind = message_kind(fragment)
    if kind == FRAGMENTED or (first is not None and kind != first):
        raise TypeError("a fragmented message's items must be all str or all bytes-like")
    return kind


# No ping waiting for its pong (every idle connection): one empty dict that no tracker
# writes to, replaced by a tracker's own at its first ping (10,000 idle connections held
# 10,000 empty dicts).
_NO_PINGS: Final[dict[bytes, tuple[float, Any]]] = {}


class PingTracker:
    """Keepalive and ping bookkeeping for one connection, as data (no clock, no I/O).

    The driver tells it what it sent and received, with the time, and asks when to wake
    up next. RFC 6455 §5.5.3: "A Pong frame sent in response to a Ping frame must have
    identical "Application data" as found in the message body of the Ping frame being
    replied to"; a Pong also answers every Ping sent before the one it echoes (a peer
    may answer only the latest).
    """

    __slots__ = ("interval", "timeout", "latency", "_waiting", "_next_ping", "_keepalive_sent")

    def __init__(self, interval: float | None, timeout: float | None, now: float) -> None:
        self.interval = interval
        self.timeout = timeout
        #: Seconds between the last answered ping and its pong (0.0 before any).
        self.latency = 0.0
        # payload -> (sent at, the driver's waiter or None), in the order sent.
        self._waiting: dict[bytes, tuple[float, Any]] = _NO_PINGS
        self._next_ping = None if interval is None else now + interval
        self._keepalive_sent: float | None = None

    def new_payload(self) -> bytes:
        """Four random bytes no outstanding ping uses."""
        while True:
            payload = os.urandom(4)
            if payload not in self._waiting:
                return payload

    def sent(self, payload: bytes, now: float, waiter: Any = None) -> None:
        """A ping with ``payload`` went out at ``now``; ``waiter`` gets its latency."""
        if payload in self._waiting:
            raise ValueError("a ping with this payload is already waiting for its pong")
        if self._waiting is _NO_PINGS:
            self._waiting = {}
        self._waiting[payload] = (now, waiter)

    def keepalive_due(self, now: float) -> bool:
        """True when a keepalive ping should go out now (one at a time)."""
        return (
            self._next_ping is not None and self._keepalive_sent is None and now >= self._next_ping
        )

    def keepalive_sent(self, payload: bytes, now: float) -> None:
        """The keepalive ping went out (or was due and could not go: ``payload`` b"")."""
        self._keepalive_sent = now
        if payload:
            self.sent(payload, now)

    def overdue(self, now: float) -> bool:
        """True when the keepalive ping got no pong within ``timeout``: fail with 1011."""
        return (
            self.timeout is not None
            and self._keepalive_sent is not None
            and now >= self._keepalive_sent + self.timeout
        )

    def pong(self, payload: bytes, now: float) -> list[tuple[Any, float]]:
        """A pong arrived: the (waiter, latency) pairs it answers, oldest first."""
        if payload not in self._waiting:
            return []
        answered: list[tuple[Any, float]] = []
        for key in list(self._waiting):
            sent_at, waiter = self._waiting.pop(key)
            answered.append((waiter, now - sent_at))
            if key == payload:
                break
        if not self._waiting:
            # Every ping answered (each keepalive ends so): the dict, which keeps its
            # table once used, goes back to the shared empty one.
            self._waiting = _NO_PINGS
        self.latency = answered[-1][1]
        if self._keepalive_sent is not None and not any(
            sent_at <= self._keepalive_sent for sent_at, _ in self._waiting.values()
        ):
            # The keepalive ping is answered: the next one is an interval away.
            self._keepalive_sent = None
            if self.interval is not None:
                self._next_ping = now + self.interval
        return [(waiter, latency) for waiter, latency in answered if waiter is not None]

    def waiters(self) -> list[Any]:
        """Every waiter still waiting (to fail them when the connection closes); forgets them."""
        waiting = [waiter for _, waiter in self._waiting.values() if waiter is not None]
        self._waiting = _NO_PINGS
        return waiting

    def next_deadline(self) -> float | None:
        """When the driver must look again: the next ping, or the pong's deadline."""
        if self._keepalive_sent is not None:
            return None if self.timeout is None else self._keepalive_sent + self.timeout
        return self._next_ping


#: The reason a connection failed by the keepalive gives in its Close frame.
KEEPALIVE_REASON: Final = _KEEPALIVE_FAILED


@dataclasses.dataclass(slots=True)
class Backoff:
    """Delays between reconnection attempts: ``initial`` doubling (``factor``) up to
    ``maximum`` seconds, each with up to ``jitter`` of itself added at random (so that
    many clients of a restarted server do not all come back at once)."""

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.25
    _delay: float = dataclasses.field(default=0.0, init=False, repr=False)

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        self._delay = min(self.maximum, self._delay * self.factor if self._delay else self.initial)
        return self._delay * (1.0 + random.uniform(0.0, self.jitter))

    def reset(self) -> None:
        """A connection succeeded: start again from ``initial``."""
        self._delay = 0.0


def retryable(error: BaseException) -> bool:
    """True for a failure worth reconnecting after: network errors, timeouts, a lost
    handshake, a 5xx answer (from the server or a proxy: 502 while the server is down).
    Not for a refusal (4xx), a bad response or a bug."""
    if isinstance(error, (InvalidStatusError, ProxyError)):
        return error.status >= 500
    if isinstance(error, HandshakeError):
        return isinstance(error, (TimeoutError, EOFError))
    return isinstance(error, OSError)


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """The opening handshake's request: ``path`` (with the query) and ``headers``
    (name, value) as sent, in order (on a server: those the hooks see, plus Host)."""

    path: str
    headers: list[tuple[str, str]]

    def header(self, name: str, default: _T | None = None) -> str | _T | None:
        """The first value of header ``name`` (ASCII case ignored), else ``default``."""
        return _header(self.headers, name, default)


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """The opening handshake's response: ``status`` (101) and the headers that are not
    the handshake's own (on a client: what ``on_header`` sees)."""

    status: int
    headers: list[tuple[str, str]]

    def header(self, name: str, default: _T | None = None) -> str | _T | None:
        """The first value of header ``name`` (ASCII case ignored), else ``default``."""
        return _header(self.headers, name, default)


def sent_request(head: bytes) -> Request:
    """The :class:`Request` a client sent, from its request head as written (the
    Dialer's ``on_request_bytes``): the target, and every header line in order."""
    # The head is this side's own, built by the engine: limits sized to it, never hit.
    size = len(head) + 16
    parser = RequestParser(max_line=size, max_headers=size, max_size=size)
    parser.feed(head)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in parser.headers()
    ]
    return Request(parser.target.decode("latin-1"), headers)


def received_request(head: bytes) -> Request:
    """The :class:`Request` a server received, from its request head as read (accepted,
    so well formed): the target, Host and the headers the Upgrader hooks see (names
    canonicalised, as ``on_header`` gets them), in order."""
    size = len(head) + 16
    parser = RequestParser(max_line=size, max_headers=size, max_size=size)
    parser.feed(head)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in hooked_request_headers(parser)
    ]
    return Request(parser.target.decode("latin-1"), headers)


def sent_response(head: bytes) -> Response:
    """The :class:`Response` a server sent, from its 101 head as written: the status and
    the headers that are not the handshake's own (those a client's ``on_header`` sees)."""
    size = len(head) + 16
    parser = ResponseParser(max_line=size, max_headers=size, max_size=size)
    parser.feed(head)
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in hooked_response_headers(parser)
    ]
    return Response(parser.status, headers)


def _header(headers: list[tuple[str, str]], name: str, default: _T | None) -> str | _T | None:
    lower = name.lower()
    for key, value in headers:
        if key.lower() == lower:
            return value
    return default


class RequestCapture:
    """Keeps what a server's opening handshake saw (path, Host, headers) for the
    :class:`Request` the connection reports, by wrapping the caller's Upgrader hooks
    (which still run as given). One instance per thread, or per event loop: the hooks
    run during one handshake's parse, before the connection is made."""

    def __init__(self) -> None:
        self.path = ""
        self.headers: list[tuple[str, str]] = []

    def request(self) -> Request:
        """The last handshake's request (owned lists; the capture starts afresh)."""
        request = Request(self.path, self.headers)
        self.headers = []
        return request

    def wrap(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` (Upgrader keywords) with ``on_request``, ``on_host`` and
        ``on_header`` replaced by hooks that record, then call the caller's; a new dict."""
        on_request = options.get("on_request")
        on_host = options.get("on_host")
        on_header = options.get("on_header")

        def request_hook(uri: Any) -> object:
            self.path = bytes(uri).decode("latin-1")
            self.headers = []
            return None if on_request is None else on_request(uri)

        def host_hook(host: Any) -> object:
            self.headers.append(("Host", bytes(host).decode("latin-1")))
            return None if on_host is None else on_host(host)

        def header_hook(key: Any, value: Any) -> object:
            self.headers.append((bytes(key).decode("latin-1"), bytes(value).decode("latin-1")))
            return None if on_header is None else on_header(key, value)

        return {
            **options,
            "on_request": request_hook,
            "on_host": host_hook,
            "on_header": header_hook,
        }
