"""A WebSocket connection for threads: :class:`Connection`, driven by the calling threads.

There is no reader thread per connection. ``recv`` reads the socket in the caller's
thread (the fast path: one ``recv_into`` straight into the protocol's buffer, then the
message); ``send`` writes in the caller's thread under a lock, so the frames of one
message never interleave with another's. With ``ping_interval`` set, the process's one
keepalive thread (:mod:`wsio.sync.keepalive`) sends the pings and, when no thread is
reading, reads what came (pongs, and messages into a queue; once it holds ``max_queue`` messages,
reading pauses) so that the keepalive works whatever the application does.

There is no write buffer but the kernel's: ``send`` returns once the socket took the
bytes, and blocks while the peer does not read, so ``write_limit`` (which bounds
``wsio.aio``'s buffer) has nothing to bound here.

Locks, always taken in this order: ``_write_lock`` (one message on the wire at a time)
before ``_proto_lock`` (the protocol object, held only around its own calls, never
around I/O). ``_read_lock`` serialises reading the socket; ``_receiving`` is held by
the application thread in ``recv`` (a second one gets ConcurrencyError).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import logging
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, overload

from wsio import _connection as shared
from wsio._connection import Options, PingTracker, Request, Response
from wsio._engine.protocol import (
    Chunk,
    Close,
    ConnectionState,
    Ping,
    Pong,
    Protocol,
)
from wsio.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from wsio.sync.keepalive import schedule

__all__ = ["Connection", "Pinged"]

log = logging.getLogger("wsio")

_Data = str | bytes
_READ_SIZE = 65536


class Pinged:
    """A ping in flight: :meth:`wait` returns its latency once the pong arrives."""

    __slots__ = ("_connection", "_event", "_latency", "_error")

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._event = threading.Event()
        self._latency = 0.0
        self._error: ConnectionClosed | None = None

    def done(self) -> bool:
        """True once the pong arrived or the connection closed."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> float:
        """Seconds between the ping and its pong; reads the connection meanwhile if no
        other thread does. TimeoutError after ``timeout``; ConnectionClosed if the
        connection closed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._event.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("no pong within the timeout")
            if not self._connection._read_while(self._event.is_set, left):
                self._event.wait(0.05 if left is None else min(left, 0.05))
        if self._error is not None:
            raise self._error
        return self._latency

    def _resolve(self, latency: float, error: ConnectionClosed | None = None) -> None:
        self._latency, self._error = latency, error
        self._event.set()


class Connection:
    """One side of an open WebSocket connection, safe to use from several threads.

    Made by :func:`wsio.sync.connect` or given to a :func:`wsio.sync.serve` handler.
    ``send`` may be called from any number of threads at once; one thread at a time
    may receive (``recv``, ``recv_streaming``, iteration). Closing it (``close``, or
    leaving its ``with`` block) runs the closing handshake within ``close_timeout``.
    """

    def __init__(
        self,
        sock: Any,
        protocol: Protocol,
        options: Options,
        *,
        request: Request | None = None,
        response: Response | None = None,
        subprotocol: str | None = None,
        read_ahead: bytes | memoryview = b"",
    ) -> None:
        self.socket = sock
        self.protocol = protocol
        self.options = options
        #: The opening handshake's request, and response.
        self.request = request
        self.response = response
        #: The subprotocol the handshake agreed on, or None.
        self.subprotocol = subprotocol
        self.local_address: Any = _address(sock.getsockname)
        self.remote_address: Any = _address(sock.getpeername)
        self._write_lock = threading.Lock()
        self._proto_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._receiving = threading.Lock()
        self._bulk = False
        # The peer's Close is in but not yet answered: messages before it are queued.
        self._answer_pending = False
        self._queue: collections.deque[_Data] = collections.deque()
        # The message arriving in pieces (the core streams; see _after_events): its
        # pieces so far, owned, and whether it is text.
        self._parts: list[bytes] = []
        self._parts_text = False
        # While recv_streaming waits for its message's pieces: (piece, last, text).
        self._stream: collections.deque[tuple[bytes, bool, bool]] | None = None
        self._closed = threading.Event()
        self._is_closed = False  # _closed.is_set(), as a plain attribute for the hot path
        self._failure: BaseException | None = None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._sendmsg = None if self._tls else getattr(sock, "sendmsg", None)
        self._recv_into = sock.recv_into
        self._sendall = sock.sendall
        self._pings = PingTracker(options.ping_interval, options.ping_timeout, time.monotonic())
        if options.write_timeout is not None:
            _set_send_timeout(sock, options.write_timeout)
        if len(read_ahead):
            self._process_data(read_ahead)
        if options.ping_interval is not None:
            schedule(self)

    # -- receiving ------------------------------------------------------------------

    @overload
    def recv(self, timeout: float | None = None, decode: None = None) -> _Data: ...
    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[True]) -> str: ...
    @overload
    def recv(self, timeout: float | None = None, *, decode: Literal[False]) -> bytes: ...
    @overload
    def recv(self, timeout: float | None, decode: Literal[True]) -> str: ...
    @overload
    def recv(self, timeout: float | None, decode: Literal[False]) -> bytes: ...

    def recv(self, timeout: float | None = None, decode: bool | None = None) -> _Data:
        """The next message: ``str`` for text, ``bytes`` for binary (owned copies).

        ``decode=False`` gives text as its UTF-8 bytes, ``decode=True`` binary decoded
        as UTF-8. TimeoutError after ``timeout`` seconds (the connection stays usable);
        ConnectionClosedOK/ConnectionClosedError once it is closed; ConcurrencyError
        while another thread is receiving.
        """
        message = self._next(timeout)
        return message if decode is None else _converted(message, decode)

    def recv_streaming(self, decode: bool | None = None) -> Iterator[_Data]:
        """The next message as an iterator of its pieces as they arrive (``str`` for
        text, ``bytes`` for binary, owned; ``decode`` as in :meth:`recv`).

        Memory stays bounded whatever the message's size: each piece is what one read
        brought, handed out before the next read. The limits and checks still apply
        as the pieces arrive (a violation fails the connection and the iterator raises
        ConnectionClosedError). One reader at a time, until the iterator ends.
        """
        receiving = self._receiving
        if not receiving.acquire(False):
            raise ConcurrencyError("another thread is already receiving on this connection")
        try:
            if self._queue:
                message = self._queue.popleft()
                yield _converted(message, decode)
                return
            pieces: collections.deque[tuple[bytes, bool, bool]] = collections.deque()
            with self._proto_lock:
                # What came of the message already is its first piece.
                if self._parts:
                    pieces.append((b"".join(self._parts), False, self._parts_text))
                    self._parts = []
                self._stream = pieces
            decoder = None
            while True:
                while pieces:
                    data, last, text = pieces.popleft()
                    if text if decode is None else decode:
                        # A character may be cut between pieces (the core checked them).
                        if decoder is None:
                            decoder = codecs.getincrementaldecoder("utf-8")()
                        yield decoder.decode(data, last)
                    else:
                        yield data
                    if last:
                        return
                with self._read_lock:
                    if self._is_closed or self.protocol.close_expected():
                        break
                    self._read(None)
            if self._answer_pending:
                self._finish()
            self._wait_closed()
            raise self._closed_error()
        finally:
            self._stream = None
            receiving.release()

    def __iter__(self) -> Iterator[_Data]:
        """Every message until the connection closes normally (ConnectionClosedError
        otherwise)."""
        with contextlib.suppress(ConnectionClosedOK):
            while True:
                yield self.recv()

    def _next(self, timeout: float | None) -> _Data:
        queue = self._queue
        if queue:
            return queue.popleft()
        # One application reader at a time; the mark is a lock so that two threads
        # can never both take it.
        receiving = self._receiving
        if not receiving.acquire(False):
            raise ConcurrencyError("another thread is already receiving on this connection")
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            with self._read_lock:
                while not queue:
                    if self._is_closed or self.protocol.close_expected():
                        break
                    self._read(deadline)
            if queue:
                return queue.popleft()
            if self._answer_pending:
                self._finish()
            self._wait_closed()
            raise self._closed_error()
        finally:
            receiving.release()

    def _read(self, deadline: float | None) -> None:
        # One read, and what follows from it; called with _read_lock held.
        if deadline is not None and not self._readable(deadline - time.monotonic()):
            raise TimeoutError("no message within the timeout")
        try:
            if self._bulk:
                # A large message is arriving: read it in large pieces into this
                # thread's scratch buffer and let the protocol copy them (a memcpy is
                # cheaper than the reads a small buffer would take).
                scratch = _scratch()
                n = self._recv_into(scratch)
                # Until a read brings what the protocol's own small buffer would have
                # held: a large message arrives in reads of whatever the sender
                # managed, rarely a full buffer.
                self._bulk = n > _BULK_MIN
                self._after_events(scratch[:n] if n else None, n)
                return
            view = self.protocol.get_buffer()
            n = self._recv_into(view)
        except (OSError, ValueError) as error:  # ValueError: the socket was closed under us
            self._lost(error)
            return
        # Small reads go straight into the protocol's buffer (no copy); one that fills
        # it says more is waiting.
        self._bulk = n == len(view) and n > 0
        self._after_events(None, n)

    def _readable(self, timeout: float) -> bool:
        if self._tls and self.socket.pending():
            return True
        try:
            ready, _, _ = select.select([self.socket], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            return True  # let the read report it
        return bool(ready)

    def _read_while(self, wanted: Any, timeout: float | None) -> bool:
        """Read until ``wanted()`` or ``timeout``, if no other thread is reading; False
        if one is (it will do the work). Messages read go to the queue."""
        if not self._read_lock.acquire(blocking=False):
            return False
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not wanted() and not self._closed.is_set():
                if deadline is not None and not self._readable(deadline - time.monotonic()):
                    break
                self._read(None)
        finally:
            self._read_lock.release()
        return True

    def _drain(self) -> bool:
        """Read what has arrived without waiting, unless someone is reading or the queue
        is full (then reading pauses: the peer waits for the application); False then."""
        limit = self.options.max_queue
        if self._receiving.locked() or not self._read_lock.acquire(blocking=False):
            return False
        try:
            while not self._closed.is_set() and self._readable(0.0):
                # A message still arriving (its pieces in _parts) is left to the
                # application's recv: drained, it would be held whole, whatever its size.
                if (limit is not None and len(self._queue) >= limit) or self._parts:
                    return False
                self._read(None)
        finally:
            self._read_lock.release()
        return True

    def _process_data(self, data: bytes | memoryview) -> None:
        self._after_events(data, 0)

    def _after_events(self, data: bytes | memoryview | None, n: int) -> None:
        # Bytes in (``data``, or ``n`` read into the protocol's buffer, 0: end of
        # stream), then what the events they make call for.
        protocol = self.protocol
        queue = self._queue
        with self._proto_lock:
            if data is not None:
                protocol.receive_data(data)
            elif n:
                protocol.buffer_updated(n)
            else:
                protocol.receive_eof()
            events = protocol.events_received()
            closing = protocol.close_expected()
            if closing and (protocol.close_initiator == "remote" or protocol.error is not None):
                # RFC 6455 §5.5.1: "An endpoint MAY delay sending a Close frame until its
                # current message is sent": the application may still answer the
                # messages that came before the peer's Close (or before a violation);
                # the Close goes out with its first send, or once it has read them all.
                self._answer_pending = bool(queue) or any(
                    type(event) is Chunk and event.message_finished for event in events
                )
        flush = False
        for event in events:
            kind = type(event)
            if kind is Chunk:
                self._piece(event)  # type: ignore[arg-type]
            elif kind is Ping or kind is Close:
                flush = True
            elif kind is Pong:
                assert isinstance(event, Pong)
                for waiter, latency in self._pings.pong(event.data, time.monotonic()):
                    waiter._resolve(latency)
        if closing:
            if protocol.error is not None:
                log.debug("%s: failed: %s", self.remote_address, protocol.error)
            if not self._answer_pending:
                self._finish()
        elif flush:
            self._flush()

    def _piece(self, chunk: Chunk) -> None:
        # The core streams every message (Chunk events: views into its buffer, valid
        # until the next read): a message in one piece is copied out whole; pieces go
        # to a waiting recv_streaming, or are kept until their message is complete.
        data = chunk.data
        text = chunk.opcode == 1
        stream = self._stream
        if stream is not None:
            # recv_streaming's message: handed over piece by piece (the next message's
            # pieces, after its last, are kept as usual).
            stream.append((bytes(data), chunk.message_finished, text))
            if chunk.message_finished:
                self._stream = None
            return
        parts = self._parts
        if chunk.message_finished and not parts:
            self._queue.append(str(data, "utf-8") if text else bytes(data))
            return
        if not parts:
            self._parts_text = text
        parts.append(bytes(data))
        if chunk.message_finished:
            whole = b"".join(parts)
            self._parts = []
            # Text was checked by the core as it came; decoding is the copy to str.
            self._queue.append(whole.decode() if self._parts_text else whole)

    # -- sending --------------------------------------------------------------------

    def send(self, message: _Data | bytearray | memoryview | Iterable[Any]) -> None:
        """Send one message: a ``str`` as text, a bytes-like object as binary, an iterable
        of ``str`` (or of bytes-like) as one fragmented message, a frame per item.

        Safe from several threads at once. Blocks while the peer does not read (the
        kernel's send buffer is the only write buffer). ConnectionClosed once closed.
        """
        protocol = self.protocol
        kind = type(message)
        with self._write_lock:
            if kind is bytes or kind is str or isinstance(message, (bytearray, memoryview)):
                with self._proto_lock:
                    # Anything but OPEN (a Close sent, received or owed, the stream
                    # ended) takes the slow check; it raises unless a Close is owed.
                    if (
                        self._answer_pending
                        or self._is_closed
                        or protocol.close_sent is not None
                        or protocol.close_expected()
                    ):
                        self._check_open()
                    if kind is str:
                        protocol.send_text(message)  # type: ignore[arg-type]
                    else:
                        protocol.send_binary(message)  # type: ignore[arg-type]
                    out = protocol.data_to_send()
                    answered = self._answer_pending and self._answered()
                self._write(out)
            else:
                answered = self._send_fragments(message)
        if answered:
            self._shut(wait_eof=protocol.is_client)

    def _send_fragments(self, message: Any) -> bool:
        # With _write_lock held: RFC 6455 §5.4 "the fragments of one message MUST NOT be
        # interleaved between the fragments of another message".
        shared.message_kind(message)
        protocol = self.protocol
        kind: int | None = None
        answered = False
        for fragment in message:
            kind_now = shared.fragment_kind(fragment, kind)
            with self._proto_lock:
                self._check_open()
                if kind is None:
                    if kind_now == shared.TEXT:
                        protocol.send_text(fragment, fin=False)
                    else:
                        protocol.send_binary(fragment, fin=False)
                else:
                    protocol.send_continuation(
                        fragment.encode() if isinstance(fragment, str) else fragment, fin=False
                    )
                out = protocol.data_to_send()
                answered = self._answered() or answered
            kind = kind_now
            self._write(out)
        with self._proto_lock:
            self._check_open()
            if kind is None:
                protocol.send_binary(b"")  # an empty iterable: one empty binary message
            else:
                protocol.send_continuation(b"", fin=True)
            out = protocol.data_to_send()
            answered = self._answered() or answered
        self._write(out)
        return answered

    def _check_open(self) -> None:
        # With _proto_lock held.
        if self._answer_pending and not self._closed.is_set():
            return  # the protocol sends the answering Close after this message
        protocol = self.protocol
        # Not OPEN: a Close was sent (or is queued in answer), or the stream ended.
        if protocol.close_sent is not None or protocol.close_expected() or self._closed.is_set():
            raise self._closed_error()

    def _answered(self) -> bool:
        # With _proto_lock held, after data_to_send(): True if that carried the Close
        # answering the peer's (the closing handshake is then over once it is written).
        answered, self._answer_pending = self._answer_pending, False
        return answered

    def _finish(self) -> None:
        """The peer's Close (or a failure) is in: send the answer, close TCP."""
        self._answer_pending = False
        self._flush()
        self._shut(wait_eof=self.protocol.is_client)

    def _write(self, out: list[Any]) -> None:
        # With _write_lock held.
        try:
            if len(out) == 1:
                self._sendall(out[0])
            elif self._sendmsg is not None:
                _sendmsg_all(self._sendmsg, out)
            else:
                for buffer in out:
                    self._sendall(buffer)
        except (OSError, ValueError) as error:
            self._lost(error)
            raise self._closed_error() from error

    def _flush(self) -> None:
        """Send what the protocol queued on its own (pongs, a Close)."""
        with self._write_lock:
            with self._proto_lock:
                self._answer_pending = False
                out = self.protocol.data_to_send()
            if out:
                with contextlib.suppress(ConnectionClosed):
                    self._write(out)

    def ping(self, data: str | bytes | None = None) -> Pinged:
        """Send a Ping; the returned :class:`Pinged` waits for its pong and gives the
        latency. ``data`` (at most 125 bytes) defaults to four random bytes."""
        waiter = Pinged(self)
        payload = data.encode() if isinstance(data, str) else data
        with self._write_lock:
            with self._proto_lock:
                self._check_open()
                if payload is None:
                    payload = self._pings.new_payload()
                self.protocol.send_ping(payload)
                self._pings.sent(payload, time.monotonic(), waiter)
                out = self.protocol.data_to_send()
                answered = self._answered()
            self._write(out)
        if answered:
            self._shut(wait_eof=self.protocol.is_client)
        return waiter

    def pong(self, data: str | bytes = b"") -> None:
        """Send an unsolicited Pong (a unidirectional heartbeat, RFC 6455 §5.5.3)."""
        with self._write_lock:
            with self._proto_lock:
                self._check_open()
                self.protocol.send_pong(data)
                out = self.protocol.data_to_send()
                answered = self._answered()
            self._write(out)
        if answered:
            self._shut(wait_eof=self.protocol.is_client)

    # -- closing --------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Run the closing handshake (RFC 6455 §7.1.2): send a Close frame, wait up to
        ``close_timeout`` for the peer's and for the end of the TCP connection, then
        close the socket. Messages still arriving meanwhile are dropped. Idempotent."""
        if self._answer_pending:
            self._finish()
        self._send_close(code, reason)
        self._wait_closed()

    def _send_close(self, code: int, reason: str) -> None:
        # The write lock may be held by a send blocked on a peer that does not read: wait
        # for it no longer than the close timeout, then give up on the Close frame.
        timeout = self.options.close_timeout
        if not self._write_lock.acquire(timeout=-1 if timeout is None else timeout):
            self._abort()
            return
        try:
            with self._proto_lock:
                if self.protocol.state is not ConnectionState.OPEN:
                    return
                self.protocol.send_close(code, reason)
                out = self.protocol.data_to_send()
            with contextlib.suppress(ConnectionClosed):
                self._write(out)
        finally:
            self._write_lock.release()

    def _wait_closed(self) -> None:
        timeout = self.options.close_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            # Read the peer's Close ourselves, unless a receiving thread does.
            if not self._read_while(self._closed.is_set, left):
                self._closed.wait(0.05 if left is None else min(left, 0.05))
        self._abort()

    def _shut(self, wait_eof: bool) -> None:
        """The closing handshake is over: close TCP (RFC 6455 §7.1.1: a client waits
        ``close_timeout`` for the server to close first)."""
        if wait_eof and not self._closed.is_set():
            timeout = self.options.close_timeout
            deadline = None if timeout is None else time.monotonic() + timeout
            with contextlib.suppress(OSError, ValueError):
                while deadline is None or self._readable(deadline - time.monotonic()):
                    if not self.socket.recv(_READ_SIZE):
                        break
        self._abort()

    def _abort(self) -> None:
        """Close the socket now, wake every waiter; idempotent."""
        if self._closed.is_set():
            return
        with self._proto_lock:
            if self.protocol.state is not ConnectionState.CLOSED:
                self.protocol.fail(1006)
        self._is_closed = True
        self._closed.set()
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.socket.close()
        error = self._closed_error()
        for waiter in self._pings.waiters():
            waiter._resolve(0.0, error)

    def _lost(self, error: BaseException) -> None:
        if self._failure is None:
            self._failure = error
        self._abort()

    def _closed_error(self) -> ConnectionClosed:
        return shared.closed_error(self.protocol)

    # -- keepalive (wsio.sync.keepalive's thread) ----------------------------------

    def _keepalive(self, now: float) -> float | None:
        """Send the keepalive ping when due, fail the connection when its pong is late,
        read what arrived when nobody reads; return when to look again (None: done)."""
        pings = self._pings
        self._drain()
        if self._closed.is_set():
            return None
        if pings.overdue(now):
            log.info("%s: %s", self.remote_address, shared.KEEPALIVE_REASON)
            self._fail(1011, shared.KEEPALIVE_REASON)
            return None
        if pings.keepalive_due(now):
            # One thread keeps every connection alive: it never waits on one, neither
            # for its lock nor for room in its socket's send buffer.
            if self._writable() and self._write_lock.acquire(blocking=False):
                try:
                    with self._proto_lock:
                        if self.protocol.state is not ConnectionState.OPEN:
                            return None
                        payload = pings.new_payload()
                        self.protocol.send_ping(payload)
                        pings.keepalive_sent(payload, now)
                        out = self.protocol.data_to_send()
                    with contextlib.suppress(ConnectionClosed):
                        self._write(out)
                finally:
                    self._write_lock.release()
            else:
                # A send is blocked on a peer that does not read: that counts as a ping
                # without an answer.
                pings.keepalive_sent(b"", now)
        return pings.next_deadline()

    def _writable(self) -> bool:
        try:
            _, ready, _ = select.select([], [self.socket], [], 0.0)
        except (OSError, ValueError):
            return False
        return bool(ready)

    def _fail(self, code: int, reason: str) -> None:
        with self._proto_lock:
            self.protocol.fail(code, reason)
        if self._writable() and self._write_lock.acquire(blocking=False):
            try:
                with self._proto_lock:
                    out = self.protocol.data_to_send()
                with contextlib.suppress(ConnectionClosed):
                    self._write(out)
            finally:
                self._write_lock.release()
        self._abort()

    # -- properties -----------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds between the last answered ping and its pong (0.0 before any)."""
        return self._pings.latency

    @property
    def close_code(self) -> int | None:
        """The peer's close code (1005 none given, 1006 no Close frame); None while open."""
        return self.protocol.close_code if self._closed.is_set() else None

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason; None while open."""
        return self.protocol.close_reason if self._closed.is_set() else None

    @property
    def state(self) -> ConnectionState:
        """OPEN, CLOSING or CLOSED (the protocol's state)."""
        return self.protocol.state

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # An error escaping the block is an internal error: 1011, not a normal close
        # (leaving a generator or an interrupt is not).
        if isinstance(exc, Exception) and not isinstance(exc, ConnectionClosed):
            self.close(1011)
        else:
            self.close()

    def __repr__(self) -> str:
        return f"<wsio.sync.Connection {self.remote_address} {self.state.name}>"


_local = threading.local()
# Reads of a large message go into a buffer this size, one per reading thread.
_SCRATCH_SIZE = 262144
# A read in bulk mode bringing no more than this (the core's smallest read buffer) goes
# back to the protocol's own buffer: messages of a few KiB then take one read each.
_BULK_MIN = 4096


def _scratch() -> memoryview:
    try:
        return _local.scratch  # type: ignore[no-any-return]
    except AttributeError:
        _local.scratch = memoryview(bytearray(_SCRATCH_SIZE))
        return _local.scratch  # type: ignore[no-any-return]


def _converted(message: _Data, decode: bool | None) -> _Data:
    # recv's ``decode``: None keeps the message's type; True gives str, False bytes.
    if decode is None:
        return message
    if decode:
        return message if isinstance(message, str) else message.decode()
    return message.encode() if isinstance(message, str) else message


def _sendmsg_all(sendmsg: Any, buffers: list[Any]) -> None:
    # sendmsg may take only part: drop what went, retry the rest.
    views = [memoryview(buffer).cast("B") for buffer in buffers]
    while views:
        sent = sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


def _set_send_timeout(sock: Any, seconds: float) -> None:
    # SO_SNDTIMEO (socket(7)) bounds each send on the kernel side only, so reads stay
    # untimed and the socket stays blocking: a send that made no progress for that long
    # fails with EAGAIN (an OSError: the connection is lost, 1006).
    whole = int(seconds)
    timeval = struct.pack("@ll", whole, int((seconds - whole) * 1_000_000))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _address(get: Any) -> Any:
    try:
        return get()
    except OSError:
        return None
