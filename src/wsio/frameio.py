"""Frames read from and written to blocking streams: sockets, :class:`wsio.Conn`, files.

A *source* has ``recv_into`` (a socket) or ``readinto`` (a binary file); a *sink* has
``sendall`` (a socket) or ``write`` (a binary file). Nothing here buffers: a header is
read with exactly the reads it needs, so the bytes after it stay in the stream for the
caller, and a frame is written with one system call where the stream allows it.

Thread safety: a stream written by several threads at once needs its writes whole. Wrap
it once in a :class:`LockedSink` and give that to every writer: each call of
:func:`write_frame` (and every ``wsutil`` helper that writes one frame or one message
in one call) then goes out whole, never interleaved with another thread's bytes.
Without it, nothing here may be called on one stream from two threads at once.
"""

from __future__ import annotations

import ssl
import threading
from typing import Protocol, runtime_checkable

from wsio._engine.framing import (
    MAX_HEADER_SIZE,
    Frame,
    Header,
    decode_header,
    encode_header_into,
    needed_header_size,
)
from wsio._engine.limits import DEFAULT_MAX_FRAME_SIZE
from wsio.exceptions import ConnectionEOFError, PayloadTooBigError, UnexpectedEOFError

__all__ = [
    "SocketSource",
    "FileSource",
    "Source",
    "SocketSink",
    "FileSink",
    "Sink",
    "read_exactly_into",
    "read_header",
    "read_header_into",
    "read_frame",
    "read_payload",
    "LockedSink",
    "write_header",
    "write_frame",
    "write_all",
]


@runtime_checkable
class SocketSource(Protocol):
    """Anything read like a socket."""

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int: ...


@runtime_checkable
class FileSource(Protocol):
    """Anything read like a binary file."""

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


@runtime_checkable
class SocketSink(Protocol):
    """Anything written like a socket."""

    def sendall(self, data: bytes | bytearray | memoryview, /) -> None: ...


@runtime_checkable
class FileSink(Protocol):
    """Anything written like a binary file."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int | None: ...


Source = SocketSource | FileSource
Sink = SocketSink | FileSink

#: Payloads up to this size are copied behind their header for a single write when the
#: stream has no scatter-gather write; larger ones go as two writes to avoid the copy.
_COALESCE_LIMIT = 16384
#: A payload is read in chunks of at most this size, so memory follows the bytes that
#: arrive and not the length the peer declared.
_READ_CHUNK = 262144


def read_exactly_into(source: Source, view: memoryview) -> int:
    """Fill ``view`` from ``source``; return how many bytes were read (less only at EOF)."""
    read = getattr(source, "recv_into", None) or source.readinto  # type: ignore[union-attr]
    filled = 0
    total = len(view)
    while filled < total:
        n = read(view[filled:])
        if not n:
            if n is None:  # a non-blocking file with nothing to read now
                raise BlockingIOError("the stream had no bytes to read")
            break
        filled += n
    return filled


def read_header_into(source: Source, header: Header, scratch: bytearray | None = None) -> Header:
    """Read one frame header from ``source`` into ``header``; return ``header``.

    ``scratch`` (at least 14 bytes, reused across calls) saves the one allocation
    left. The header is not checked against the RFC rules: see
    :func:`wsio.check_header`. Raises :class:`ConnectionEOFError` at a clean end of
    stream and :class:`UnexpectedEOFError` in the middle of the header.
    """
    if scratch is None:
        scratch = bytearray(MAX_HEADER_SIZE)
    elif len(scratch) < MAX_HEADER_SIZE:
        raise ValueError("scratch must hold at least 14 bytes")
    view = memoryview(scratch)
    got = read_exactly_into(source, view[:2])
    if got < 2:
        if got == 0:
            raise ConnectionEOFError("end of stream before a frame header")
        raise UnexpectedEOFError("end of stream in a frame header")
    size = needed_header_size(view[:2])
    if size > 2 and read_exactly_into(source, view[2:size]) < size - 2:
        raise UnexpectedEOFError("end of stream in a frame header")
    decoded = decode_header(view[:size], 0, header)
    assert decoded is not None  # all `size` bytes are there
    return header


def read_header(source: Source) -> Header:
    """Read one frame header from ``source`` (see :func:`read_header_into`)."""
    return read_header_into(source, Header())


def read_frame(source: Source, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> Frame:
    """Read one whole frame; its payload is a new ``bytearray``, still masked if it was.

    A header declaring more than ``max_frame_size`` bytes raises
    :class:`PayloadTooBigError` before any payload is read (see :func:`read_payload`).
    """
    header = read_header(source)
    return Frame(header, read_payload(source, header, max_frame_size=max_frame_size))


def read_payload(
    source: Source, header: Header, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
) -> bytearray:
    """Read the payload ``header`` declares into a new ``bytearray`` (still masked).

    RFC 6455 §10.4: "implementations ... MUST protect themselves against exceeding
    those limits": over ``max_frame_size`` raises :class:`PayloadTooBigError` before a
    byte is read, and the buffer grows with the bytes that arrive (at most doubling),
    never to the length the peer declared ahead of them. :class:`UnexpectedEOFError`
    if the stream ends first.
    """
    length = header.length
    if length > max_frame_size:
        raise PayloadTooBigError(f"frame of {length} bytes is over the limit of {max_frame_size}")
    payload = bytearray(min(length, _READ_CHUNK))
    filled = 0
    while True:
        got = read_exactly_into(source, memoryview(payload)[filled:])
        filled += got
        if filled < len(payload):
            raise UnexpectedEOFError(f"end of stream after {filled} of {length} payload bytes")
        if filled == length:
            return payload
        payload.extend(bytes(min(length - filled, len(payload))))


class LockedSink:
    """A sink whose every write goes out whole, under one lock, whatever the thread.

    Give it (not the socket) to every writer of the connection: :func:`write_frame`,
    :func:`write_all` and the one-call ``wsutil`` helpers then send each frame (each
    message, for the helpers) whole, so frames written from several threads never
    interleave, over TCP or TLS. ``lock`` (reentrant) is for what takes several calls:
    hold it from a ``wsutil.Writer``'s first write to its ``flush()`` to keep the
    fragments of that message together. ``sink`` is the wrapped stream.
    """

    __slots__ = ("sink", "lock")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.lock = threading.RLock()

    def sendall(self, data: bytes | bytearray | memoryview, /) -> None:
        """Write all of ``data`` with the lock held."""
        with self.lock:
            write_all(self.sink, data)


def write_all(sink: Sink, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``sink`` (``sendall`` or a loop over ``write``).

    One call is whole against other threads only on a :class:`LockedSink`.
    """
    sendall = getattr(sink, "sendall", None)
    if sendall is not None:
        sendall(data)
        return
    view = memoryview(data)
    while view:
        n = sink.write(view)  # type: ignore[union-attr]
        if n is None:  # a non-blocking raw file that could not take it now
            raise BlockingIOError("the stream did not accept the write")
        view = view[n:]


def write_header(sink: Sink, header: Header, scratch: bytearray | None = None) -> None:
    """Write ``header`` to ``sink`` in one write; ``scratch`` (14+ bytes) avoids allocating.

    Its payload is a second write: from several threads, hold ``LockedSink.lock`` for both.
    """
    if scratch is None:
        scratch = bytearray(MAX_HEADER_SIZE)
    n = encode_header_into(scratch, 0, header)
    write_all(sink, memoryview(scratch)[:n])


def write_frame(sink: Sink, frame: Frame) -> None:
    """Write ``frame`` (header, then payload as it is) in one system call where possible.

    Plain sockets get a scatter-gather ``sendmsg`` of header and payload; other
    streams get one write of both when the payload is small, else two writes. Safe
    from several threads only on a :class:`LockedSink`, which it holds for the frame.
    """
    if type(sink) is LockedSink:
        with sink.lock:
            _write_frame(sink.sink, frame)
        return
    _write_frame(sink, frame)


def _write_frame(sink: Sink, frame: Frame) -> None:
    header = frame.header
    payload = frame.payload
    if header.length != len(payload):
        header = header.replace(length=len(payload))
    head = bytearray(MAX_HEADER_SIZE)
    n = encode_header_into(head, 0, header)
    if not payload:
        write_all(sink, memoryview(head)[:n])
        return
    sock = _plain_socket(sink)
    if sock is not None:
        _sendmsg_all(sock, [memoryview(head)[:n], memoryview(payload)])
    elif len(payload) <= _COALESCE_LIMIT:
        del head[n:]
        head += payload
        write_all(sink, head)
    else:
        write_all(sink, memoryview(head)[:n])
        write_all(sink, payload)


def _plain_socket(sink: object) -> _ScatterSink | None:
    # sendmsg is one system call for header and payload; TLS sockets don't have it.
    if hasattr(sink, "sendmsg") and not isinstance(sink, ssl.SSLSocket):
        return sink
    return None


class _ScatterSink(Protocol):
    def sendmsg(self, buffers: list[memoryview], /) -> int: ...


def _sendmsg_all(sock: _ScatterSink, buffers: list[memoryview]) -> None:
    while buffers:
        sent = sock.sendmsg(buffers)
        while sent and buffers:
            first = buffers[0]
            if sent >= len(first):
                sent -= len(first)
                buffers.pop(0)
            else:
                buffers[0] = first[sent:]
                sent = 0
