"""Frames read from and written to blocking streams: sockets, :class:`wsio.Conn`, files.

A *source* has ``recv_into`` (a socket) or ``readinto`` (a binary file); a *sink* has
``sendall`` (a socket) or ``write`` (a binary file). Nothing here buffers: a header is
read with exactly the reads it needs, so the bytes after it stay in the stream for the
caller, and a frame is written with one system call where the stream allows it.
"""

from __future__ import annotations

import ssl
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
    :class:`PayloadTooBigError` before any payload is read; the payload buffer grows
    with the bytes that arrive, never ahead of them.
    """
    header = read_header(source)
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
            return Frame(header, payload)
        payload.extend(bytes(min(length - filled, len(payload))))


def write_all(sink: Sink, data: bytes | bytearray | memoryview) -> None:
    """Write all of ``data`` to ``sink`` (``sendall`` or a loop over ``write``)."""
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
    """Write ``header`` to ``sink`` in one write; ``scratch`` (14+ bytes) avoids allocating."""
    if scratch is None:
        scratch = bytearray(MAX_HEADER_SIZE)
    n = encode_header_into(scratch, 0, header)
    write_all(sink, memoryview(scratch)[:n])


def write_frame(sink: Sink, frame: Frame) -> None:
    """Write ``frame`` (header, then payload as it is) in one system call where possible.

    Plain sockets get a scatter-gather ``sendmsg`` of header and payload; other
    streams get one write of both when the payload is small, else two writes.
    """
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
