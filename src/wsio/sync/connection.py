"""A WebSocket connection for threads: :class:`Connection`, driven by the calling threads.

There is no reader thread per connection. ``recv`` reads the socket in the caller's
thread (the fast path: one ``recv_into`` straight into the protocol's buffer, then the
message copied out once; compiled, a message over 64 KiB in one frame is read straight
into the ``bytes`` recv returns); ``send`` writes in the caller's thread under a lock
(one ``sendall`` or ``sendmsg`` per message; a client's long payload masked and sent a
block at a time), so the frames of one message never interleave with another's. The
per-message path is :class:`_Wire` (compiled: a cdef class calling the protocol core's
C API). With ``ping_interval`` set, the process's one keepalive thread
(:mod:`wsio.sync.keepalive`) sends the pings and, when no thread is reading, reads what
came (pongs, and messages into a queue; once it holds ``max_queue`` messages, reading
pauses) so that the keepalive works whatever the application does.

There is no write buffer but the kernel's: ``send`` returns once the socket took the
bytes, and blocks while the peer does not read, so ``write_limit`` (which bounds
``wsio.aio``'s buffer) has nothing to bound here.

Locks, always taken in this order: ``_write_lock`` (one message on the wire at a time;
the core's send side, whose output only its holder touches: the reader leaves Pongs to
it) before ``_proto_lock`` (the protocol's state and its receive side, held only around
its own calls, never around I/O; a send while OPEN does without it). ``_read_lock``
serialises reading the socket; the application thread in ``recv`` marks itself the
reader (``_Wire.take_reader``: a second one gets ConcurrencyError).
"""

# mypy: disable-error-code="unreachable"
# (`if cython.compiled:` branches are C-only, as in wsio._engine.)
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
    WHOLE_FRAME_MAX,
    Chunk,
    Close,
    ConnectionState,
    Ping,
    Pong,
    Protocol,
)
from wsio.exceptions import ConcurrencyError, ConnectionClosed, ConnectionClosedOK
from wsio.sync.keepalive import schedule

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.wsio.sync.connection import (  # type: ignore[import-untyped]
        PY_LOCK_ACQUIRED,
        PY_LOCK_INTR,
        PyBUF_SIMPLE,
        PyBuffer_Release,
        PyByteArray_AS_STRING,
        PyByteArray_FromStringAndSize,
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyErr_CheckSignals,
        PyObject_GetBuffer,
        PyThread_acquire_lock_timed,
        PyThread_allocate_lock,
        PyThread_free_lock,
        PyThread_release_lock,
        PyUnicode_DecodeUTF8,
        buffer_t,
        key_t,
        memcpy,
        uchar_ptr,
        wsio_acc_append,
        wsio_acc_clear,
        wsio_acc_take,
        wsio_mask_xor,
    )

__all__ = ["Connection", "Pinged"]

log = logging.getLogger("wsio")

_Data = str | bytes
_READ_SIZE = 65536
# Protocol.direct_max (see __init__): whole messages up to 64 MiB are read in place.
_DIRECT_MAX = 1 << 26
# Protocol.inline_max: a server copies payloads up to 16 KiB behind their header.
_INLINE_SERVER = 16384
_INLINE_ANY = 1 << 62
# Protocol.keep_output: a 16 KiB payload with the longest header a client's frame has.
_KEEP_OUTPUT = _INLINE_SERVER + 14
# Compiled, a client masks a payload longer than this a block this size at a time into
# a buffer of that size and sends each block from it (see _Wire._send_masked).
_MASK_BLOCK = 262144


class _Lock:
    """The connection's mutexes: ``threading.Lock``'s ``acquire``/``release``/
    ``locked`` and ``with``; compiled, a C lock that ``_Wire`` takes and gives with C
    calls (a threading.Lock's methods parse their arguments on every call: a fifth of
    what a 32 B round trip cost beyond the plain socket's)."""

    def __init__(self) -> None:
        self._held = False
        if cython.compiled:
            self._lock = PyThread_allocate_lock()
            if not self._lock:
                raise MemoryError("cannot allocate a lock")
        else:
            self._py = threading.Lock()

    def __dealloc__(self) -> None:
        if cython.compiled and self._lock != cython.NULL:
            PyThread_free_lock(self._lock)

    def take(self, timeout: cython.double) -> cython.bint:
        """Compiled: acquire, waiting at most ``timeout`` seconds (< 0: for ever) with
        the GIL released; signal handlers run while it waits (as threading.Lock's)."""
        if cython.compiled:
            if PyThread_acquire_lock_timed(self._lock, 0, 0) == PY_LOCK_ACQUIRED:
                self._held = True
                return True
            if timeout == 0:
                return False
            deadline: cython.double = time.monotonic() + timeout
            us: cython.longlong = -1 if timeout < 0 else cython.cast(cython.longlong, timeout * 1e6)
            while True:
                with cython.nogil:
                    status = PyThread_acquire_lock_timed(self._lock, us, 1)
                if status == PY_LOCK_ACQUIRED:
                    self._held = True
                    return True
                if status != PY_LOCK_INTR:
                    return False
                PyErr_CheckSignals()  # a handler that raises (Ctrl-C) ends the wait
                if timeout > 0:
                    left: cython.double = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    us = cython.cast(cython.longlong, left * 1e6)
        else:
            got = self._py.acquire(True, timeout) if timeout != 0 else self._py.acquire(False)
            if got:
                self._held = True
            return got

    def give(self) -> cython.int:
        """Compiled: release (the caller holds it)."""
        self._held = False
        if cython.compiled:
            PyThread_release_lock(self._lock)
        else:
            self._py.release()
        return 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """As ``threading.Lock.acquire``."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return bool(self.take(-1.0 if blocking and timeout < 0 else (timeout if blocking else 0.0)))

    def release(self) -> None:
        """As ``threading.Lock.release``."""
        if not self._held:
            raise RuntimeError("release unlocked lock")
        self.give()

    def locked(self) -> bool:
        """True while some thread holds it."""
        return bool(self._held)

    def __enter__(self) -> bool:
        return bool(self.take(-1.0))

    def __exit__(self, *exc_info: object) -> None:
        self.give()


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
        self._write_lock = _Lock()
        self._proto_lock = _Lock()
        self._read_lock = _Lock()
        self._receiving = threading.Lock()
        self._queue: collections.deque[_Data] = collections.deque()
        # A data frame up to 1 MiB is read whole into the core's buffer (grown as its
        # bytes arrive), so a message that fits takes one read and one copy out; longer
        # ones come in pieces as they arrive (recv_streaming's memory stays bounded).
        protocol.whole_frame_max = min(WHOLE_FRAME_MAX, protocol.max_frame_size)
        # Compiled, a longer message in one frame is read straight into the bytes recv
        # returns (no copy out of the read buffer; its pages are touched only as its
        # bytes arrive), except while recv_streaming waits for pieces.
        protocol.direct_max = _DIRECT_MAX
        # One buffer, one sendall per message: a client masks every payload into a copy
        # anyway, so it goes behind the header; a server copies a short one (cheaper
        # than a sendmsg of two buffers) and sends a long one from the caller's object.
        protocol.inline_max = _INLINE_ANY if protocol.is_client else _INLINE_SERVER
        # The output buffer keeps its block between messages up to a 16 KiB payload's
        # frame (an 8 KiB echo reallocated it twice per message otherwise): a thread per
        # connection holds far more than that in its stack.
        protocol.keep_output = _KEEP_OUTPUT
        # Pongs are sent by the thread holding the write lock (_flush), never by the
        # reading thread inside the core: then only a writer touches the core's output,
        # and a send writes the core's own buffer (single_output) without a copy.
        protocol.auto_pong = False
        self._closed = threading.Event()
        self._failure: BaseException | None = None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._sendmsg = None if self._tls else getattr(sock, "sendmsg", None)
        self._recv_into = sock.recv_into
        self._sendall = sock.sendall
        self._wire = _Wire(self, protocol, self._queue)
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
        message = self._wire.next(timeout)
        return message if decode is None else _converted(message, decode)

    def recv_streaming(self, decode: bool | None = None) -> Iterator[_Data]:
        """The next message as an iterator of its pieces as they arrive (``str`` for
        text, ``bytes`` for binary, owned; ``decode`` as in :meth:`recv`).

        Memory stays bounded whatever the message's size: each piece is a frame of up
        to 1 MiB, or what one read brought of a longer one, handed out before the next
        read. The limits and checks still apply
        as the pieces arrive (a violation fails the connection and the iterator raises
        ConnectionClosedError). One reader at a time, until the iterator ends.
        """
        if not self._wire.take_reader():
            raise ConcurrencyError("another thread is already receiving on this connection")
        try:
            if self._queue:
                message = self._queue.popleft()
                yield _converted(message, decode)
                return
            pieces: collections.deque[tuple[bytes, bool, bool]] = collections.deque()
            rx = self._wire
            with self._proto_lock:
                # What came of the message already is its first piece.
                arrived = rx.take_arriving()
                if arrived is not None:
                    pieces.append(arrived)
                rx.stream = pieces
                # Pieces as they arrive: no message read whole into its own bytes.
                self.protocol.direct_max = 0
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
            self._wire.stream = None
            self.protocol.direct_max = _DIRECT_MAX
            self._wire.drop_reader()

    def __iter__(self) -> Iterator[_Data]:
        """Every message until the connection closes normally (ConnectionClosedError
        otherwise)."""
        next_message = self._wire.next
        with contextlib.suppress(ConnectionClosedOK):
            while True:
                yield next_message(None)

    def _no_more_messages(self) -> None:
        # The application's reader found the stream over: answer the peer's Close if it
        # is owed, wait for the end of TCP, raise why it ended.
        if self._answer_pending:
            self._finish()
        self._wait_closed()
        raise self._closed_error()

    def _read(self, deadline: float | None) -> None:
        # One read and what follows from it; called with _read_lock held.
        self._wire.read(deadline)

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
        if self._wire.has_reader() or not self._read_lock.acquire(blocking=False):
            return False
        try:
            while not self._closed.is_set() and self._readable(0.0):
                # A message still arriving (its first pieces held) is left to the
                # application's recv: drained, it would be held whole, whatever its size.
                if (limit is not None and len(self._queue) >= limit) or self._wire.arriving():
                    return False
                if not self._tls:
                    self._read(None)
                elif not self._read_tls_nowait():
                    return False
        finally:
            self._read_lock.release()
        return True

    def _read_tls_nowait(self) -> bool:
        """One read of what TLS can decrypt now, never waiting (the rest of a record,
        a peer that sent half of one and stopped); False if there was nothing whole, or
        a send is under way. Called with _read_lock held."""
        # A TLS read waits for a whole record, and the socket is blocking: made
        # non-blocking for this read, which only a holder of both locks may do (a send
        # on it now would fail with SSLWantWriteError).
        if not self._write_lock.acquire(blocking=False):
            return False
        sock = self.socket
        try:
            timeout = sock.gettimeout()
            sock.setblocking(False)
            try:
                n = self._recv_into(self.protocol.get_buffer(-1))
            finally:
                sock.settimeout(timeout)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return False  # no whole record yet: the next keepalive tick looks again
        except (OSError, ValueError) as error:
            self._lost(error)
            return False
        finally:
            self._write_lock.release()
        self._parsed(n)
        return True

    def _process_data(self, data: bytes | memoryview) -> None:
        # Bytes that came before the connection was made (read with the handshake):
        # into the core's buffer, as if read.
        view = memoryview(data).cast("B")
        pos = 0
        while pos < len(view) and self.protocol.reading:
            buffer = self.protocol.get_buffer(-1)
            n = min(len(buffer), len(view) - pos)
            buffer[:n] = view[pos : pos + n]
            pos += n
            self._parsed(n)

    def _parsed(self, n: int) -> None:
        # ``n`` bytes were read into the core's buffer (0: end of stream).
        self._wire.parsed(n)

    @property
    def _answer_pending(self) -> bool:
        # The peer's Close is in but not yet answered: messages before it are queued.
        return self._wire.answer_pending

    @_answer_pending.setter
    def _answer_pending(self, value: bool) -> None:
        self._wire.answer_pending = value

    @property
    def _is_closed(self) -> bool:
        # _closed.is_set(), as a plain attribute for the hot path.
        return self._wire.closed

    @_is_closed.setter
    def _is_closed(self, value: bool) -> None:
        self._wire.closed = value

    # -- sending --------------------------------------------------------------------

    def send(self, message: _Data | bytearray | memoryview | Iterable[Any]) -> None:
        """Send one message: a ``str`` as text, a bytes-like object as binary, an iterable
        of ``str`` (or of bytes-like) as one fragmented message, a frame per item.

        Safe from several threads at once. Blocks while the peer does not read (the
        kernel's send buffer is the only write buffer). ConnectionClosed once closed.
        """
        kind = type(message)
        if kind is str:
            answered = self._wire.send(1, message.encode())  # type: ignore[union-attr]
        elif kind is bytes or isinstance(message, (bytearray, memoryview)):
            answered = self._wire.send(2, message)
        else:
            with self._write_lock:
                answered = self._send_fragments(message)
        if answered:
            self._shut(wait_eof=self.protocol.is_client)

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
        core: Protocol = self.protocol
        with self._write_lock:
            with self._proto_lock:
                self._answer_pending = False
                pings = self._wire.pings
                if pings:
                    self._wire.pings = []
                    # RFC 6455 §5.5.2: a Pong for each Ping, "unless it already received
                    # a Close frame": a Ping that came before the peer's Close is still
                    # answered, ahead of the answering Close; none after ours.
                    for payload in pings:
                        if core.state is ConnectionState.OPEN or core.close_pending():
                            core.send_pong(payload)
                out = core.data_to_send()
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


# What _Wire.parse reports: a message ended in this read; a Ping or Close came
# (something is owed to the peer: _flush).
_ENDED = 1
_FLUSH = 2


class _Wire:
    """The per-message path of one :class:`Connection` (compiled: a cdef class, every
    field and call below at C level): a message sent with one write; reads into the
    core's buffer turned into whole messages on the connection's queue (owned
    ``bytes``/``str``), or into the pieces a waiting ``recv_streaming`` takes; Pings
    noted (owed a Pong: the connection's _flush) and Pongs. The rest (closing, failing,
    keepalive) is the connection's, called back through ``conn``."""

    def __init__(self, conn: Connection, core: Protocol, queue: collections.deque[_Data]) -> None:
        self.conn = conn
        self.core = core
        self.queue = queue
        # The connection's locks (taken and given with C calls when compiled), and
        # the queue's methods bound once: a call per message then neither looks the
        # method up nor makes a bound method (measured: a third of what a round trip
        # of 32 B cost beyond the plain socket's, in instructions).
        self.write_lock = conn._write_lock
        self.proto_lock = conn._proto_lock
        self.read_lock = conn._read_lock
        self.claim = conn._receiving.acquire
        self.unclaim = conn._receiving.release
        self.locked = conn._receiving.locked
        self.reader = False  # compiled: the application's reader (see take_reader)
        self.put = queue.append
        self.take = queue.popleft
        self.sendall = conn._sendall
        self.recv_into = conn._recv_into
        #: The peer's Close is in but not yet answered: messages before it are queued.
        self.answer_pending = False
        #: The connection is closed (the socket too): Connection._closed, as a flag.
        self.closed = False
        #: recv_streaming's pieces while it waits for its message: (piece, last, text).
        self.stream: collections.deque[tuple[bytes, bool, bool]] | None = None
        #: A message is arriving: its first pieces are held until its last comes.
        self.partial = False
        #: Payloads of Pings not answered yet, and of Pongs not yet matched to pings.
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self._kind = 0  # the opcode of the message arriving: 1 text, 2 binary
        # Compiled, a client without compression masks long payloads block by block.
        self.mask_blocks = bool(cython.compiled and core.is_client and not core.extensions)
        # Its pieces so far: compiled, a bytes object grown in place (protocol.pxd's
        # wsio_acc_*: handed out without a copy); pure, a bytearray.
        self._acc = bytearray()

    # -- sending --------------------------------------------------------------------

    def send(self, opcode: cython.int, data: Any) -> cython.int:
        """Send one message in one frame: one sendall of the core's own buffer (header
        and payload together: a server's short payload, a client's masked one), one
        sendmsg (a server's long payload, not copied) or a client's long payload masked
        and sent a block at a time. Returns 1 when that also answered the peer's Close
        (the caller then closes TCP)."""
        core = self.core
        conn = self.conn
        answered: cython.int = 0
        self.write_lock.take(-1.0)
        try:
            if (
                self.answer_pending
                or self.closed
                or core.close_sent is not None
                or core.close_expected()
                or core.close_pending()
            ):
                # Anything but OPEN (a Close sent, received or owed, the stream ended):
                # checked under the protocol lock; it raises unless a Close is owed.
                self.proto_lock.take(-1.0)
                try:
                    conn._check_open()
                    core.send_data(opcode, data)
                    out = core.data_to_send()
                    answered = conn._answered()
                finally:
                    self.proto_lock.give()
                conn._write(out)
                return answered
            # OPEN: the core's send side is only touched by holders of the write lock
            # (the reader leaves Pongs to _flush), so no protocol lock for the message.
            if (
                self.mask_blocks
                and (len(data) if type(data) is bytes else memoryview(data).nbytes) > _MASK_BLOCK
            ):
                return self._send_masked(opcode, data)
            core.send_data(opcode, data)
            tail = core.single_output()
            if tail is None:
                # A long payload, queued as its own buffer (or a Close just came to be
                # owed): the list, under the protocol lock like every Close.
                self.proto_lock.take(-1.0)
                try:
                    out = core.data_to_send()
                    answered = self.answer_pending and conn._answered()
                finally:
                    self.proto_lock.give()
                conn._write(out)
                return answered
            try:
                self.sendall(tail)
            except (OSError, ValueError) as error:
                conn._lost(error)
                raise conn._closed_error() from error
            finally:
                core.clear_output()
        finally:
            self.write_lock.give()
        return 0

    def _send_masked(self, opcode: cython.int, data: Any) -> cython.int:
        """Compiled, write lock held, OPEN: a client's long message in one frame, its
        payload masked a block at a time into a small buffer that each sendall writes
        from (in cache), not masked whole into a copy of its size first."""
        if cython.compiled:
            view = cython.declare(buffer_t)
            key = cython.declare(key_t)
            PyObject_GetBuffer(data, cython.address(view), PyBUF_SIMPLE)
            try:
                header = self.core.data_header(opcode, view.len, cython.cast(uchar_ptr, key))
                hsize: cython.Py_ssize_t = len(header)
                block = PyByteArray_FromStringAndSize(cython.NULL, hsize + _MASK_BLOCK)
                whole = memoryview(block)
                p = cython.cast(uchar_ptr, PyByteArray_AS_STRING(block))
                src = cython.cast(uchar_ptr, view.buf)
                memcpy(p, PyBytes_AS_STRING(header), hsize)  # the first block follows it
                off: cython.Py_ssize_t = hsize
                pos: cython.Py_ssize_t = 0
                k: cython.Py_ssize_t
                try:
                    while pos < view.len:
                        k = view.len - pos if view.len - pos < _MASK_BLOCK else _MASK_BLOCK
                        # RFC 6455 §5.3: "Octet i of the transformed data
                        # ("transformed-octet-i") is the XOR of octet i of the original
                        # data ("original-octet-i") with octet at index i modulo 4 of the
                        # masking key ("masking-key-octet-j")": i counts from the
                        # payload's start, so each block starts at key index pos % 4.
                        wsio_mask_xor(p + off, src + pos, k, key, pos)
                        self.sendall(whole[: off + k])
                        pos += k
                        off = 0
                except (OSError, ValueError) as error:
                    self.conn._lost(error)
                    raise self.conn._closed_error() from error
            finally:
                PyBuffer_Release(cython.address(view))
        return 0

    # -- receiving ------------------------------------------------------------------

    def next(self, timeout: Any) -> Any:
        """The next message, reading as needed (Connection.recv without ``decode``)."""
        queue = self.queue
        if queue:
            return self.take()
        # One application reader at a time; the mark is a lock so that two threads
        # can never both take it.
        if not self.take_reader():
            raise ConcurrencyError("another thread is already receiving on this connection")
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            self.read_lock.take(-1.0)
            try:
                while not queue:
                    if self.closed or self.core.close_expected():
                        break
                    self.read(deadline)
            finally:
                self.read_lock.give()
            if queue:
                return self.take()
            self.conn._no_more_messages()
        finally:
            self.drop_reader()
        return None  # not reached: _no_more_messages raises

    def take_reader(self) -> cython.bint:
        """Mark the calling thread as the application's one reader; False if another
        thread is. Compiled, a flag: its test and its set run holding the GIL with no
        Python code between them, so two threads never both take it (and a lock's
        acquire costs ~500 instructions); pure Python, the connection's lock."""
        if cython.compiled:
            if self.reader:
                return False
            self.reader = True
            return True
        else:
            return bool(self.claim(False))

    def drop_reader(self) -> cython.int:
        """The application's reader is done."""
        if cython.compiled:
            self.reader = False
        else:
            self.unclaim()
        return 0

    def has_reader(self) -> cython.bint:
        """True while an application thread is receiving."""
        if cython.compiled:
            return self.reader
        else:
            return bool(self.locked())

    def read(self, deadline: Any) -> cython.int:
        """One read into the core's buffer (its size is the core's choice: a frame up to
        1 MiB whole, else up to 256 KiB at a time), and what follows from it; called
        with the read lock held (the core's receive side is only the reader's)."""
        if deadline is not None and not self.conn._readable(deadline - time.monotonic()):
            raise TimeoutError("no message within the timeout")
        n: cython.Py_ssize_t
        try:
            n = self.recv_into(self.core.get_buffer(-1))
        except (OSError, ValueError) as error:  # ValueError: the socket was closed under us
            self.conn._lost(error)
            return 0
        return self.parsed(n)

    def parsed(self, n: cython.Py_ssize_t) -> cython.int:
        """``n`` bytes were read into the core's buffer (0: end of stream): parse them
        into messages, then what the rest calls for (Pongs, the closing handshake)."""
        core = self.core
        conn = self.conn
        ended: cython.int = 0
        self.proto_lock.take(-1.0)
        try:
            if n:
                ended = self.parse(n)
            else:
                core.receive_eof()
            closing = core.close_expected()
            if closing and (core.close_initiator == "remote" or core.error is not None):
                # RFC 6455 §5.5.1: "An endpoint MAY delay sending a Close frame until its
                # current message is sent": the application may still answer the
                # messages that came before the peer's Close (or before a violation);
                # the Close goes out with its first send, or once it has read them all.
                self.answer_pending = bool(self.queue) or bool(ended & _ENDED)
            pongs = self.pongs
            if pongs:
                self.pongs = []
        finally:
            self.proto_lock.give()
        if pongs:
            now = time.monotonic()
            for payload in pongs:
                for waiter, latency in conn._pings.pong(payload, now):
                    waiter._resolve(latency)
        if closing:
            if core.error is not None:
                log.debug("%s: failed: %s", conn.remote_address, core.error)
            if not self.answer_pending:
                conn._finish()
        elif ended & _FLUSH:
            conn._flush()
        return 0

    def parse(self, n: cython.Py_ssize_t) -> cython.int:
        """Walk the pieces ``n`` more bytes complete (the core's C path; a data piece
        is copied out once, here). Returns _ENDED and _FLUSH bits."""
        core = self.core
        found: cython.int = 0
        op: cython.int
        core.add_bytes(n)
        try:
            while core.reading and core.next_piece():
                op = core.frame.opcode
                if op >= 8 or core.piece_inflates():
                    # Control frames (the closing handshake) and compressed data: the
                    # core's own handling, into events.
                    core.handle_piece()
                    events = core.take_events()
                    if events is not None:
                        found |= self._events(events)
                    continue
                if op:
                    self._kind = op
                if cython.compiled:
                    # A message read in place is its own bytes: kept, not copied.
                    found |= self._data(
                        core.piece_data(),
                        core.piece_length,
                        core.piece_bytes(),
                        core.piece_ends_frame and core.frame.fin,
                    )
                else:
                    found |= self._data(
                        None, 0, core.piece_view(), core.piece_ends_frame and core.frame.fin
                    )
        except Exception as exc:  # a violation, or a bug (1011): the connection fails
            core.fail_with_error(exc)
        return found

    def _events(self, events: list[Any]) -> cython.int:
        found: cython.int = 0
        for event in events:
            kind = type(event)
            if kind is Chunk:
                # A compressed message's piece, inflated (owned bytes).
                chunk: Chunk = event
                data = chunk.data
                self._kind = chunk.opcode
                if cython.compiled:
                    found |= self._data(
                        cython.cast(uchar_ptr, PyBytes_AS_STRING(data)),
                        len(data),
                        data,
                        chunk.message_finished,
                    )
                else:
                    found |= self._data(None, 0, data, chunk.message_finished)
            elif kind is Ping:
                self.pings.append(event.data)
                found |= _FLUSH
            elif kind is Pong:
                self.pongs.append(event.data)
            elif kind is Close:
                found |= _FLUSH
        return found

    def _data(self, p: uchar_ptr, n: cython.Py_ssize_t, data: Any, done: cython.bint) -> cython.int:
        # One piece of a data message: compiled, ``p``/``n`` (``data``, when given, is
        # the bytes object they point into); pure, ``data``. ``done``: it ends the message.
        text: cython.bint = self._kind == 1
        stream = self.stream
        if stream is not None or not (done and not self.partial):
            if stream is None:
                self.partial = not done
                if cython.compiled:
                    wsio_acc_append(
                        cython.address(self._accp),
                        cython.address(self._acc_len),
                        cython.cast(cython.p_char, p),
                        n,
                    )
                else:
                    self._acc += data
                if not done:
                    return 0
                message = self._take()
                self.put(message.decode() if text else message)
                return _ENDED
            # recv_streaming's message: handed over piece by piece (the next message's
            # pieces, after its last, are kept as usual).
            if data is not None and type(data) is bytes:
                piece = data
            elif cython.compiled:
                piece = PyBytes_FromStringAndSize(cython.cast(cython.p_char, p), n)
            else:
                piece = bytes(data)
            stream.append((piece, done, text))
            if done:
                self.stream = None
                return _ENDED
            return 0
        # A message in one piece: one copy out of the read buffer (text: one decode;
        # the core checked its UTF-8 as it came).
        if cython.compiled:
            if text:
                self.put(PyUnicode_DecodeUTF8(cython.cast(cython.p_char, p), n, b"strict"))
            elif data is not None and type(data) is bytes:
                self.put(data)  # read in place, or inflated: already owned
            else:
                self.put(PyBytes_FromStringAndSize(cython.cast(cython.p_char, p), n))
        else:
            self.put(str(data, "utf-8") if text else bytes(data))
        return _ENDED

    def arriving(self) -> cython.bint:
        """True while a message is arriving: its first pieces held, or it is read in
        place (compiled: into its own bytes) and not all in."""
        return self.partial or self.core.reading_direct()

    def take_arriving(self) -> tuple[bytes, bool, bool] | None:
        """What arrived of the message arriving (owned), False (not its last piece),
        and whether it is text; its rest will come in pieces. None if none is."""
        if self.partial:
            return self._take(), False, self._kind == 1
        first = self.core.leave_direct()
        if first is None:
            return None
        self._kind = self.core.frame.opcode  # no piece of it was handed out yet
        return first, False, self._kind == 1

    def _take(self) -> bytes:
        self.partial = False
        if cython.compiled:
            return wsio_acc_take(cython.address(self._accp), cython.address(self._acc_len))
        else:
            whole = bytes(self._acc)
            self._acc = bytearray()
            return whole

    def __dealloc__(self) -> None:
        if cython.compiled:
            wsio_acc_clear(cython.address(self._accp), cython.address(self._acc_len))


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
