"""A WebSocket connection for asyncio: :class:`Connection`, on the callback level.

A connection is a :class:`~wsio.aio.Listener` underneath (one receive path: the
compiled loop of :mod:`wsio.aio._callback`): each received frame is turned into a whole
message (``str`` or ``bytes``, one copy out of the read buffer) and queued; ``recv``
takes from the queue without a coroutine switch when a message is already there;
``recv_streaming`` takes the frames of the message arriving now as they come. Sends
go straight through the :class:`~wsio.aio.Transport` (one write per frame). The names
and semantics are :class:`wsio.sync.Connection`'s; the shared rules live in
:mod:`wsio._connection`.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextvars
import logging
import math
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Literal, overload

from wsio import _connection as shared
from wsio._connection import Options, PingTracker, Request, Response
from wsio._engine.framing import Header, encode_header
from wsio._engine.protocol import ConnectionState
from wsio.aio._callback import Frame, Transport
from wsio.aio.listener import Listener
from wsio.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK

if TYPE_CHECKING:
    from wsio.aio.server import Server

__all__ = ["Connection", "broadcast"]

log = logging.getLogger("wsio")

_Data = str | bytes
# A message recv_streaming gave up on: the rest of its frames are dropped (a deque with
# maxlen 0 keeps nothing) until its last one.
_DISCARD: collections.deque[tuple[bytes, bool]] = collections.deque(maxlen=0)
# The context the connection's own callbacks (the keepalive timer, serve()'s handler
# done callback) run in: they read no context variable, and asyncio would otherwise copy
# the current context for each (a Context object per connection).
_CONTEXT = contextvars.Context()
# close_timeout=None: the Transport's timer still needs a number.
_FOREVER = 365 * 86400.0
# A 101 with nothing but the handshake's own headers has this many CRLFs (the status
# line, Upgrade, Connection, Sec-WebSocket-Accept, the empty line), and one more for
# each of Sec-WebSocket-Protocol and Sec-WebSocket-Extensions it carries.
_BARE_101_LINES = 5
# A keepalive deadline is met at most this share of its delay late (_Timers).
_GRAINS_PER_DELAY = 16
_FINEST_GRAIN = 2.0**-10


# The connections one keepalive timer wakes (a set: leaving it is no scan; a set can be
# weakly referenced).
_Bucket = set["Connection"]


class _Timers:
    """The keepalive deadlines of every connection on one loop, in buckets that share
    a timer: an idle connection holds a place in a set, not a TimerHandle of its own.

    A deadline ``delay`` seconds away goes in the bucket of the next multiple of the
    largest power of two under ``delay / 16`` (a keepalive is at most 1/16 of its delay
    late: 1 s at the default 20 s): connections that opened in the same second share
    one. Only the loop's timer holds a bucket (this object has weak references to
    them), so a loop closed with connections still open is not kept alive from here.
    """

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[float, weakref.ref[_Bucket]] = {}

    def add(self, connection: Connection, when: float, loop: asyncio.AbstractEventLoop) -> _Bucket:
        """Wake ``connection._keepalive_due`` at ``when`` (or a little after): returns
        the bucket, which the connection leaves with ``discard``."""
        delay = when - loop.time()
        grain = (
            2.0 ** math.floor(math.log2(delay / _GRAINS_PER_DELAY))
            if delay > _FINEST_GRAIN * _GRAINS_PER_DELAY
            else _FINEST_GRAIN
        )
        slot = math.ceil(when / grain) * grain
        ref = self.buckets.get(slot)
        bucket = None if ref is None else ref()
        if bucket is None:
            bucket = _Bucket()
            self.buckets[slot] = weakref.ref(bucket)
            loop.call_at(slot, self._fire, slot, bucket, context=_CONTEXT)
        bucket.add(connection)
        return bucket

    def _fire(self, slot: float, bucket: _Bucket) -> None:
        del self.buckets[slot]
        for connection in list(bucket):  # a due one may close another (not ours: a copy)
            if connection._keepalive is bucket:
                connection._keepalive = None
                connection._keepalive_due()


# The _Timers of each running loop (forgotten with the loop).
_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Timers] = weakref.WeakKeyDictionary()


class Connection(Listener):
    """One side of an open WebSocket connection on asyncio.

    Made by :func:`wsio.aio.connect` or given to a :func:`wsio.aio.serve` handler.
    Any number of tasks may ``send`` (the frames of one fragmented message never
    interleave with another's); one task at a time receives (``recv``,
    ``recv_streaming``, ``async for``). ``close`` (or leaving ``async with``) runs the
    closing handshake within ``close_timeout``.

    It is the callback level's :class:`~wsio.aio.Listener` of its connection (its
    ``on_*`` methods are called by the transport, not by the application): no second
    object, no bound method per callback.
    """

    # 10,000 idle connections are the norm for a server: no __dict__, nothing that is
    # not needed while idle (the queue, the close waiter and the send lock are made on
    # first use).
    __slots__ = (
        "options",
        "_request",
        "_response",
        "subprotocol",
        "transport",
        "_loop",
        "_next",
        "_more",
        "_high",
        "_low",
        "_reading_paused",
        "_getter",
        "_pieces",
        "_text",
        "_stream",
        "_write_paused",
        "_send_lock",
        "_ended",
        "_closed",
        "_rcvd",
        "_sent",
        "_code",
        "_pings",
        "_keepalive",  # the _Timers bucket it waits in, or None
        "_server",
    )

    # Messages are answered by the application's tasks after the callback returns: a
    # Close that ends the stream waits for them (released by a send, or by recv once
    # the queue is empty).
    hold_close = True
    # A frame over 1 MiB comes in pieces: recv_streaming hands them on as they come
    # (memory bounded by max_queue pieces), recv joins them.
    frame_pieces = True

    def __init__(
        self,
        options: Options,
        *,
        request: Request | bytes | None = None,
        response: Response | bytes | None = None,
        server: Server | None = None,
    ) -> None:
        self.options = options
        # The handshake as objects, or as the raw head they are made from when first
        # asked for (most applications never do: no parse per handshake).
        self._request = request
        self._response = response
        #: The subprotocol the handshake agreed on, or None.
        self.subprotocol: str | None = None
        self.transport: Transport = None  # type: ignore[assignment]
        # (A server's loop is known: asyncio.get_running_loop() costs a getpid(2).)
        self._loop = (server._loop if server is not None else None) or asyncio.get_running_loop()
        # The received messages not yet taken: the oldest in _next (a message is never
        # None), the later ones in _more, a deque made only when messages pile up (an
        # empty deque is 600 bytes; an echo never needs one).
        self._next: _Data | None = None
        self._more: collections.deque[_Data] | None = None
        self._high = options.max_queue
        self._low = None if options.max_queue is None else max(1, options.max_queue // 4)
        self._reading_paused = False
        self._getter: asyncio.Future[None] | None = None
        self._pieces: list[bytes] | None = None
        self._text = False
        # While recv_streaming has the message arriving now: its frames' payloads, or
        # pieces of them (owned copies), and whether each is the last, handed over as
        # they come.
        self._stream: collections.deque[tuple[bytes, bool]] | None = None
        self._write_paused: asyncio.Future[None] | None = None
        self._send_lock: asyncio.Lock | None = None
        # The TCP connection is gone; _closed is wait_closed's future, made when asked.
        self._ended = False
        self._closed: asyncio.Future[None] | None = None
        # The closing handshake as this side saw it (the callback level keeps its
        # protocol core to itself): the peer's Close (code, reason) and ours.
        self._rcvd: tuple[int, str] | None = None
        self._sent: tuple[int, str] | None = None
        self._code: tuple[int, str] | None = None
        self._pings = PingTracker(options.ping_interval, options.ping_timeout, self._loop.time())
        self._keepalive: _Bucket | None = None
        # serve()'s server: told when the connection opens (it starts the handler) and
        # when it ends.
        self._server = server

    @property
    def request(self) -> Request | None:
        """The opening handshake's request (a client's: every header line it sent; a
        server's: Host and the headers the Upgrader hooks see)."""
        request = self._request
        if isinstance(request, bytes):
            parse = shared.sent_request if self._server is None else shared.received_request
            request = self._request = parse(request)
        return request

    @property
    def response(self) -> Response | None:
        """The opening handshake's response: 101 and the headers that are not the
        handshake's own."""
        response = self._response
        if isinstance(response, bytes):
            response = self._response = (
                shared.sent_response(response) if response else Response(101, [])
            )
        return response

    @property
    def local_address(self) -> Any:
        """This side's socket address (as ``getsockname()``); None before the handshake."""
        # Asked of the transport each time, not kept: uvloop makes the tuple per call,
        # and 10,000 idle connections would hold 20,000 of them.
        transport = self.transport
        return None if transport is None else transport.transport.get_extra_info("sockname")

    @property
    def remote_address(self) -> Any:
        """The peer's socket address (as ``getpeername()``); None before the handshake."""
        transport = self.transport
        return None if transport is None else transport.transport.get_extra_info("peername")

    # -- the callback level's side (Listener) ------------------------------------------

    def on_connect(self, transport: Transport) -> None:
        """(Listener) The handshake is done: keep the transport, start the keepalive."""
        self.transport = transport
        self.subprotocol = transport.subprotocol
        raw = transport.transport
        response = self._response
        if (
            self._server is not None
            and type(response) is bytes
            and response.count(b"\r\n")
            == _BARE_101_LINES + (self.subprotocol is not None) + bool(transport.extensions)
        ):
            # A 101 with the handshake's own headers only (the common answer): nothing
            # to keep, the response property makes the empty Response when asked.
            self._response = b""
        high, low = self.options.write_limits
        raw.set_write_buffer_limits(high, low)
        transport.write_timeout = self.options.write_timeout
        self._schedule_keepalive()
        if self._server is not None:
            self._server._opened(self)

    def on_frame(self, transport: Transport, frame: Frame) -> None:
        """(Listener) A frame: a message's (copied out of the read buffer) or a control
        frame the core has answered."""
        opcode = frame.opcode
        if opcode >= 8:
            if opcode == 10:
                now = self._loop.time()
                for waiter, latency in self._pings.pong(frame.bytes(), now):
                    if not waiter.done():
                        waiter.set_result(latency)
                if self._keepalive is None:
                    # Waiting for this pong without a deadline (ping_timeout=None).
                    # Otherwise the timer is left where it is: when it fires it finds the
                    # ping answered and sets itself for the next one (no handle per pong).
                    self._schedule_keepalive()
            elif opcode == 8:
                # RFC 6455 §5.5.1: the body is a 2-byte code and a UTF-8 reason (the
                # core checked both and has answered with the same code).
                body = frame.bytes()
                code = int.from_bytes(body[:2], "big") if len(body) >= 2 else 1005
                self._rcvd = (code, body[2:].decode())
                if self._sent is None:
                    self._sent = (code, "")
            return  # Pings and the Close are answered by the core (RFC 6455 §5.5.1, §5.5.2)
        stream = self._stream
        if stream is not None:
            # recv_streaming's message (RFC 6455 §5.4: "the fragments of one message MUST
            # NOT be interleaved", so every data frame until a FIN belongs to it).
            if opcode:
                self._text = opcode == 1
            stream.append((frame.bytes(), frame.fin))
            if frame.fin:
                self._stream = None
            self._wake()
            if self._high is not None and len(stream) >= self._high:
                self._pause_reading()
            return
        if opcode:
            if frame.fin:
                # The common case, a message in one piece: one copy out of the read buffer.
                self._put(frame.text() if opcode == 1 else frame.bytes())
                return
            self._text = opcode == 1
        pieces = self._pieces
        if pieces is None:
            pieces = self._pieces = []
        pieces.append(frame.bytes())
        if frame.fin:
            data = b"".join(pieces)
            self._pieces = None
            self._put(data.decode() if self._text else data)

    def owes_answer(self) -> bool:
        """(Listener) Messages the application has not read yet, or one a recv() is
        about to return."""
        getter = self._getter
        return (
            self._next is not None or bool(self._stream) or (getter is not None and getter.done())
        )

    def _put(self, message: _Data) -> None:
        if self._next is None:
            self._next = message
            queued = 1
        else:
            more = self._more
            if more is None:
                more = self._more = collections.deque()
            more.append(message)
            queued = 1 + len(more)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        if self._high is not None and queued >= self._high:
            self._pause_reading()

    def _take(self) -> _Data:
        # The oldest queued message (there is one); a deque emptied is dropped.
        message = self._next
        more = self._more
        if more:
            self._next = more.popleft()
            if not more:
                self._more = None
        else:
            self._next = None
        if self._reading_paused:
            self._consumed(0 if self._next is None else 1 + len(more or ()))
        return message  # type: ignore[return-value]

    def _wake(self) -> None:
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _pause_reading(self) -> None:
        # The application is not keeping up (max_queue messages, or pieces of the
        # streamed one, unread): stop reading, the peer's TCP window fills.
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _consumed(self, left: int) -> None:
        # `left` messages or pieces are still unread: read again below the low mark.
        if self._reading_paused and left <= self._low:  # type: ignore[operator]
            self._reading_paused = False
            if not self._ended:
                self.transport.resume_reading()

    def on_close(self, transport: Transport, code: int, reason: str) -> None:
        """(Listener) The TCP connection is gone: wake every waiter."""
        self._code = (code, reason)
        if self._rcvd is None and code != 1006 and self._sent is None:
            self._sent = (code, reason)  # the core failed the connection (1002, 1007...)
        if self._keepalive is not None:
            self._keepalive.discard(self)
            self._keepalive = None
        self._ended = True
        for waiter in (self._closed, self._getter, self._write_paused):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        pings = self._pings.waiters()
        if pings:  # an exception made only for the pings waiting (most wait for none)
            error = self._closed_error()
            for ping in pings:
                if not ping.done():
                    ping.set_exception(error)
        if self._server is not None:
            self._server._ended(self)

    def pause_writing(self) -> None:
        """(Listener) the transport holds more than ``write_limit``: sends wait."""
        if self._write_paused is None:
            self._write_paused = self._loop.create_future()

    def resume_writing(self) -> None:
        """(Listener) the transport's buffer drained to the low mark: sends go on."""
        waiter, self._write_paused = self._write_paused, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- receiving ------------------------------------------------------------------

    @overload
    def recv(self, decode: None = None) -> Coroutine[Any, Any, _Data]: ...
    @overload
    def recv(self, decode: Literal[True]) -> Coroutine[Any, Any, str]: ...
    @overload
    def recv(self, decode: Literal[False]) -> Coroutine[Any, Any, bytes]: ...

    def recv(self, decode: bool | None = None) -> Coroutine[Any, Any, _Data]:
        """(Awaitable) the next message: ``str`` for text, ``bytes`` for binary (owned
        copies).

        ``decode=False`` gives text as its UTF-8 bytes, ``decode=True`` binary decoded
        as UTF-8. ConnectionClosedOK/ConnectionClosedError once closed (after the
        messages that came before the Close); ConcurrencyError while another task is
        receiving. Cancelling it loses no message.
        """
        # One coroutine per message, not a wrapper around another: recv and __anext__
        # share it (each coroutine frame held by a waiting handler is ~200 bytes).
        return self._recv(decode, False)

    async def _recv(self, decode: bool | None, iterating: bool) -> _Data:
        if self._next is None:
            stream = self._stream  # not the _streaming property: a call per message
            if self._getter is not None or (stream is not None and stream is not _DISCARD):
                raise ConcurrencyError("another task is already receiving on this connection")
            while self._next is None:
                if self._ended:
                    error = self._closed_error()
                    if iterating and isinstance(error, ConnectionClosedOK):
                        raise StopAsyncIteration
                    raise error
                # Whatever came before a Close has been read: a Close held for the
                # application's answers goes out now (Listener.hold_close).
                self.transport.release_close()
                getter = self._getter = self._loop.create_future()
                try:
                    await getter
                finally:
                    self._getter = None
        if self._more is None and not self._reading_paused:
            message = self._next  # the common case, one message queued: _take inlined
            self._next = None
        else:
            message = self._take()
        if decode is None:
            return message
        if decode:
            return message if isinstance(message, str) else message.decode()
        return message.encode() if isinstance(message, str) else message

    async def recv_streaming(self, decode: bool | None = None) -> AsyncGenerator[_Data, None]:
        """The next message as an async iterator of its pieces (owned ``str`` or
        ``bytes``; ``decode`` as in :meth:`recv`), each given as it arrives: a message
        in many frames never has to fit in memory (``max_queue`` pieces at most).

        A piece is one frame's payload, or a part of a frame over 1 MiB as it was read;
        text is decoded piece by piece (a character cut between frames comes whole in
        the later piece). What had arrived of the message before the call is its first
        piece. Closing the iterator early (``contextlib.aclosing``) drops the rest of
        the message; until then it is receiving. ConnectionClosed if the connection
        closes before the last piece; ConcurrencyError while another task is receiving.
        """
        if self._getter is not None or self._streaming:
            raise ConcurrencyError("another task is already receiving on this connection")
        while self._stream is _DISCARD and not self._ended:
            # A message given up on is still arriving: the next one starts after it.
            await self._wait()
        if self._next is not None or self._ended:
            yield await self.recv(decode)  # type: ignore[arg-type]
            return
        # From here on, the message arriving now (its frames so far, if any) and every
        # later frame of it go to this iterator instead of being joined.
        stream: collections.deque[tuple[bytes, bool]] = collections.deque()
        self._stream = stream
        if self._pieces:
            stream.append((b"".join(self._pieces), False))
            self._pieces = None
        decoder: Any = None
        last = False
        try:
            while not last:
                while not stream:
                    if self._ended:
                        raise self._closed_error()
                    await self._wait()
                piece, last = stream.popleft()
                if self._reading_paused:
                    self._consumed(len(stream))
                if decode is None:
                    decode = self._text
                if decode is False:
                    yield piece
                    continue
                if decoder is None:
                    decoder = codecs.getincrementaldecoder("utf-8")()
                yield decoder.decode(piece, last)
        finally:
            if self._stream is stream:
                # Given up on before its last frame: the rest is dropped as it comes.
                self._stream = _DISCARD
                if self._reading_paused:
                    self._consumed(0)

    @property
    def _streaming(self) -> bool:
        # recv_streaming has a message that has not ended.
        return self._stream is not None and self._stream is not _DISCARD

    async def _wait(self) -> None:
        # recv_streaming's wait for the next frame, as _recv's.
        self.transport.release_close()
        self._getter = self._loop.create_future()
        try:
            await self._getter
        finally:
            self._getter = None

    def __aiter__(self) -> Connection:
        """Every message until the connection closes normally (ConnectionClosedError
        otherwise). The connection is its own iterator: no generator per message."""
        return self

    def __anext__(self) -> Coroutine[Any, Any, _Data]:
        """(Awaitable) the next message, as :meth:`recv`; StopAsyncIteration after a
        normal close."""
        return self._recv(None, True)

    # -- sending --------------------------------------------------------------------

    async def send(
        self, message: _Data | bytearray | memoryview | Iterable[Any] | AsyncIterable[Any]
    ) -> None:
        """Send one message: a ``str`` as text, a bytes-like object as binary, an (async)
        iterable of ``str`` (or of bytes-like) as one fragmented message, a frame per item.

        Waits while more than ``write_limit`` bytes are queued (the peer does not read);
        the message is not referenced once it returns. ConnectionClosed once closed.
        """
        if self._send_lock is not None and self._send_lock.locked():
            async with self._send_lock:  # a fragmented message is on the wire: after it
                pass
        if self._sent is not None or self._rcvd is not None or self._ended:
            raise self._closed_error()  # not _open: the property, inlined on the hot path
        kind = type(message)
        if kind is str:
            opcode = 1
        elif kind is bytes or isinstance(message, (bytes, bytearray, memoryview)):
            opcode = 2
        elif isinstance(message, str):
            opcode = 1
        else:
            opcode = 0  # an (async) iterable: one fragmented message
        if opcode == 0:
            await self._send_fragments(message)
        elif self._next is None:
            self.transport.send(opcode, message)
        else:
            # More messages were read with the one this likely answers: their answers
            # go out with it in one write (the last send of the turn, or the loop's
            # next turn), not in a system call each.
            self.transport._send_soon(opcode, message)
        if self._write_paused is not None:
            await self._drain()

    async def _send_fragments(self, message: Any) -> None:
        # RFC 6455 §5.4: "the fragments of one message MUST NOT be interleaved between
        # the fragments of another message": other sends wait for the lock.
        if self._send_lock is None:
            self._send_lock = asyncio.Lock()
        async with self._send_lock:
            kind: int | None = None
            if isinstance(message, AsyncIterable):
                async for fragment in message:
                    kind = await self._send_fragment(fragment, kind)
            else:
                shared.message_kind(message)
                for fragment in message:
                    kind = await self._send_fragment(fragment, kind)
            self._check_open()
            if kind is None:
                self.transport.send(2, b"")  # an empty iterable: one empty binary message
            else:
                self.transport.send(0, b"", True)

    async def _send_fragment(self, fragment: Any, kind: int | None) -> int:
        kind_now = shared.fragment_kind(fragment, kind)
        self._check_open()
        if isinstance(fragment, str):
            fragment = fragment.encode()
        self.transport.send(kind_now if kind is None else 0, fragment, False)
        if self._write_paused is not None:
            await self._drain()
        return kind_now

    async def _drain(self) -> None:
        # The transport holds more than write_limit: wait until it drained to the low mark.
        waiter = self._write_paused
        if waiter is not None:
            await asyncio.shield(waiter)
        if self._ended:
            raise self._closed_error()

    @property
    def _open(self) -> bool:
        # OPEN (RFC 6455 §4.1): no Close sent or received, the TCP connection up.
        return self._sent is None and self._rcvd is None and not self._ended

    def _check_open(self) -> None:
        if not self._open:
            raise self._closed_error()

    def _send_close(self, code: int, reason: str) -> None:
        if self._open:
            self._sent = (code, reason)
            self.transport.send_close(code, reason)

    def ping(self, data: str | bytes | None = None) -> asyncio.Future[float]:
        """Send a Ping; the returned future gives the latency (seconds) once its Pong
        arrives (ConnectionClosed if the connection closes first). ``data`` (at most
        125 bytes) defaults to four random bytes."""
        self._check_open()
        payload = data.encode() if isinstance(data, str) else data
        if payload is None:
            payload = self._pings.new_payload()
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._pings.sent(bytes(payload), self._loop.time(), waiter)
        self.transport.send_ping(payload)
        return waiter

    def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited Pong (a unidirectional heartbeat, RFC 6455 §5.5.3)."""
        self._check_open()
        self.transport.send_pong(data.encode() if isinstance(data, str) else data)

    # -- closing --------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake (RFC 6455 §7.1.2): send a Close frame, wait up to
        ``close_timeout`` for the peer's and for the end of the TCP connection (then
        drop it). Idempotent."""
        self._send_close(code, reason)
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed (by either side)."""
        if self.transport is not None:
            self.transport.release_close()  # nothing more to answer: let a held Close go
        if not self._ended:
            await asyncio.shield(self._closed_future())

    def _closed_future(self) -> asyncio.Future[None]:
        # Done once the TCP connection is gone; made when first asked for.
        if self._closed is None:
            self._closed = self._loop.create_future()
            if self._ended:
                self._closed.set_result(None)
        return self._closed

    def _closed_error(self) -> ConnectionClosed:
        # As shared.closed_error, from what this side saw.
        received = self._rcvd or (1006, "")
        sent = self._sent
        return ConnectionClosed.of(
            *received,
            sent_code=None if sent is None else sent[0],
            sent_reason=None if sent is None else sent[1],
        )

    # -- keepalive ------------------------------------------------------------------

    def _schedule_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.discard(self)
            self._keepalive = None
        wake = self._pings.next_deadline()
        if wake is not None and not self._ended:
            loop = self._loop
            timers = _TIMERS.get(loop)
            if timers is None:
                timers = _TIMERS[loop] = _Timers()
            self._keepalive = timers.add(self, wake, loop)

    def _keepalive_due(self) -> None:
        # RFC 6455 §5.5.2: a Ping "may serve as a keepalive"; no Pong within
        # ping_timeout fails the connection with 1011. (_Timers took it off its bucket.)
        transport = self.transport
        if transport.closed:
            return
        now = self._loop.time()
        pings = self._pings
        if pings.overdue(now):
            log.info("%s: %s", self.remote_address, shared.KEEPALIVE_REASON)
            self._send_close(1011, shared.KEEPALIVE_REASON)
            transport.disconnect()  # the transport drops it after close_timeout
            return
        if pings.keepalive_due(now) and self._open:
            payload = pings.new_payload()
            pings.keepalive_sent(payload, now)
            transport.send_ping(payload)
        self._schedule_keepalive()

    # -- properties -----------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds between the last answered ping and its pong (0.0 before any)."""
        return self._pings.latency

    @property
    def close_code(self) -> int | None:
        """The peer's close code (1005 none given, 1006 no Close frame); None while open."""
        return None if self._code is None else self._code[0]

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason; None while open."""
        return None if self._code is None else self._code[1]

    @property
    def state(self) -> ConnectionState:
        """OPEN, CLOSING or CLOSED (the protocol's state)."""
        if self._ended:
            return ConnectionState.CLOSED
        return ConnectionState.OPEN if self._open else ConnectionState.CLOSING

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> None:
        # An error escaping the block is an internal error: 1011 (cancellation is not).
        if isinstance(exc, Exception) and not isinstance(exc, ConnectionClosed):
            await self.close(1011)
        else:
            await self.close()

    def __repr__(self) -> str:
        return f"<wsio.aio.Connection {self.remote_address} {self.state.name}>"


def broadcast(connections: Iterable[Connection], message: _Data | bytearray | memoryview) -> None:
    """Send ``message`` (``str`` text, bytes-like binary) to every open connection,
    without waiting: a connection whose write buffer is over its ``write_limit`` (a slow
    reader) or that is in the middle of a fragmented send is skipped.

    The frame is built once for every server connection it fits as it is, and
    compressed once for each group of connections that compress alike without context
    takeover (RFC 7692 §7.1.1.1: then each message is compressed on its own); the
    others (clients, which mask each frame; context takeover) get their own frame.
    """
    opcode = 1 if isinstance(message, str) else 2
    data = message.encode() if isinstance(message, str) else message
    plain: bytes | None = None
    compressed: dict[Any, bytes] = {}
    for connection in connections:
        transport = connection.transport
        if (
            transport is None
            or transport.closed
            or not connection._open
            or (connection._send_lock is not None and connection._send_lock.locked())
            or transport.get_write_buffer_size() > connection.options.write_limits[0]
        ):
            continue
        if transport.is_client:
            transport.send(opcode, data)
            continue
        extension = transport.extensions[0] if transport.extensions else None
        if extension is None or len(data) < extension.threshold:
            if plain is None:
                plain = _frame(opcode, 0, data)
            transport._hand_over(plain)
        elif extension.parameters.server_no_context_takeover:
            key = (extension.parameters, extension.level, extension.mem_level)
            frame = compressed.get(key)
            if frame is None:
                # A fresh codec: without context takeover every message starts afresh.
                payload = extension.bind(client=False, max_message_size=None).deflate(
                    data, True, True
                )
                frame = compressed[key] = _frame(opcode, extension.rsv, payload)
            transport._hand_over(frame)
        else:
            transport.send(opcode, data)


def _frame(opcode: int, rsv: int, payload: Any) -> bytes:
    # RFC 6455 §5.2: a server's frame is unmasked, so the same bytes go to every peer.
    header = encode_header(Header(True, rsv, opcode, False, None, len(payload)))
    return header + bytes(payload)
