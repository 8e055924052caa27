"""Reader: one message at a time from a blocking stream, across its fragments."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence

from wsio._engine.framing import (
    STATE_FRAGMENTED,
    STATE_SERVER_SIDE,
    Header,
    check_header,
    check_limits,
    decode_header,
    needed_header_size,
)
from wsio._engine.limits import (
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
)
from wsio._engine.mask import cipher
from wsio.conn import Conn
from wsio.exceptions import (
    ConnectionEOFError,
    LocalProtocolError,
    UnexpectedEOFError,
)
from wsio.frameio import Source
from wsio.frames import OpCode, State
from wsio.wsutil.extension import RecvExtension

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # The message bookkeeping the protocol core uses, as C calls, and what makes a bytes
    # object filled in place (reader.pxd cimports them).
    from cython.cimports.wsio._engine.message import (  # type: ignore[import-untyped,unreachable]
        MessageState,
    )
    from cython.cimports.wsio.wsutil.reader import (  # type: ignore[import-untyped]
        EAGAIN,
        EINTR,
        EWOULDBLOCK,
        PyBUF_WRITE,
        PyByteArray_AS_STRING,
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyErr_CheckSignals,
        PyMemoryView_FromMemory,
        errno,
        uchar_ptr,
        wsio_mask_xor,
        wsio_sock_peek,
        wsio_sock_readv2,
    )
else:
    from wsio._engine.message import MessageState

__all__ = ["FrameHandler", "Reader", "next_reader"]

# The room a frame's payload gets before its bytes arrive (see _read_frame_rest).
_AHEAD_MIN = cython.declare(cython.Py_ssize_t, 65536)

#: ``on_continuation(header)`` and ``on_intermediate(header, payload)`` hooks: a control
#: frame's payload is unmasked and valid only until the hook returns.
FrameHandler = Callable[[Header, memoryview], None]

_TEXT = int(OpCode.TEXT)
_BINARY = int(OpCode.BINARY)
_TEXT_OPCODE = OpCode.TEXT
_BINARY_OPCODE = OpCode.BINARY
_CONTINUATION = int(OpCode.CONTINUATION)
# read_plain_message reads a plain socket's descriptor itself (one readv for header and
# payload) where the socket module's own calls would take three system calls.
_RAW_SOCKETS = sys.platform != "win32"
_SOCKET = socket.socket


class Reader:
    """Reads the frames of one message after another from ``source``, as a byte stream.

    Call :meth:`next_frame` for each message (or control frame); then :meth:`read`,
    :meth:`readinto` or iteration give its payload, unmasked, across continuation
    frames, until ``b""`` marks the end of the message. Control frames that arrive in
    the middle of a fragmented message go to ``on_intermediate(header, payload)``.

    With ``buffer_size`` > 0 the reader reads ahead into one reused buffer (one
    system call for many small frames; payloads larger than the buffer go straight into
    the caller's buffer). The bytes it read ahead belong to it: :meth:`take_buffered`
    hands them over. With ``buffer_size=0`` it reads exactly what each frame needs.

    Limits: a frame over ``max_frame_size`` bytes, a message whose frames add up to
    more than ``max_message_size``, or one of more than ``max_fragments`` frames raises
    :class:`PayloadTooBigError` (close code 1009) before its payload is read. Text that
    is not UTF-8 raises :class:`InvalidUTF8Error` (1007) at the first bad byte when
    ``check_utf8`` is on (not for a message whose first frame had RSV bits set: its
    payload is an extension's encoding, which that extension decodes and checks).
    """

    def __init__(
        self,
        source: Source,
        state: State | int,
        *,
        check_utf8: bool = True,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        on_continuation: Callable[[Header], None] | None = None,
        on_intermediate: FrameHandler | None = None,
        extensions: Sequence[RecvExtension] = (),
        skip_header_check: bool = False,
        buffer_size: int = 65536,
    ) -> None:
        self.check_utf8 = check_utf8
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.on_continuation = on_continuation
        self.on_intermediate = on_intermediate
        self.extensions = list(extensions)
        self.skip_header_check = skip_header_check
        self._exact = buffer_size <= 0
        self._buffer = bytearray(max(buffer_size, 256))
        self._view = memoryview(self._buffer)
        self.reset(source, state)

    def reset(self, source: Source, state: State | int) -> None:
        """Start over on ``source`` (a new connection); read-ahead bytes are dropped."""
        self.source = source
        self._proven = 0
        self._read: Callable[[memoryview], int] = (
            getattr(source, "recv_into", None) or source.readinto  # type: ignore[union-attr,assignment]
        )
        self._state = int(state)  # a plain int: IntFlag arithmetic costs microseconds
        self._pos = self._end = 0
        self._header: Header | None = None  # the frame being read, if any
        self._remaining = 0  # its payload bytes not yet read
        self._mask: bytes | None = None
        self._mask_offset = 0
        self._frame_open = False
        self._message_done = False
        # The message's size, frame count and UTF-8 state: the core's own rules.
        self._message = MessageState()
        self._checking = False  # the current frame's payload is text to check

    @property
    def state(self) -> State:
        """Which side this reader is, what was negotiated, whether a message is open."""
        return State(self._state)

    @property
    def header(self) -> Header | None:
        """The header of the frame being read (the last one :meth:`next_frame` returned)."""
        return self._header

    @property
    def buffered(self) -> int:
        """How many bytes were read ahead from the source and are not yet consumed."""
        return self._end - self._pos

    def take_buffered(self) -> bytes:
        """Remove and return the bytes read ahead, for whoever reads the source next."""
        data = bytes(self._view[self._pos : self._end])
        self._pos = self._end = 0
        return data

    # Frames.

    def next_frame(self) -> Header:
        """Read and check the next frame header and make its payload readable.

        Returns data frames and the control frames that arrive between messages; a
        control frame in the middle of a fragmented message is handed to
        ``on_intermediate`` (or dropped without it) and returned with nothing to read.
        Unread payload of the previous frame is skipped first.
        """
        if self._remaining:
            self._skip(self._remaining)
        header = self._read_header()
        if not self.skip_header_check:
            check_header(header, self._state)
        length = header.length
        check_limits(length, self.max_frame_size, 0, 0, 0, 0)
        wire_rsv = header.rsv
        for extension in self.extensions:
            header = extension.unset_bits(header)
        self._header = header
        self._remaining = length
        self._mask = header.mask if header.masked else None
        self._mask_offset = 0
        opcode = header.opcode
        fragmented = bool(self._state & STATE_FRAGMENTED)
        if opcode >= 8:  # a control frame
            if fragmented:
                payload = self._read_control_payload(length)
                if self.on_intermediate is not None:
                    self.on_intermediate(header, payload)
                self._frame_open = False
                return header
            self._checking = False
        else:
            if opcode == _CONTINUATION and self.on_continuation is not None:
                self.on_continuation(header)
            message = self._message
            message.check(
                opcode, length, self.max_frame_size, self.max_message_size, self.max_fragments
            )
            # RSV bits an extension cleared mean the payload is transformed (RFC 7692:
            # compressed), so the wire bytes are not the text: the extension's own
            # reader checks the text it produces.
            self._state = message.take(
                opcode,
                header.fin,
                length,
                self._state,
                self.check_utf8 and opcode == _TEXT and not wire_rsv,
            )
            self._checking = message.text
        self._frame_open = True
        self._message_done = False
        return header

    def discard(self) -> None:
        """Skip the rest of the current message, fragments included, without unmasking."""
        while True:
            if self._remaining:
                self._skip(self._remaining)
            if not self._state & STATE_FRAGMENTED:
                break
            self.next_frame()
        self._frame_open = False
        self._message_done = True

    def read_plain_message(self, want: int = 0) -> tuple[bytes, OpCode] | None:
        """Read the next message whole if it is one plain data frame: (payload, opcode).

        A plain frame is final, of opcode TEXT or BINARY (``want`` if not 0), with no
        RSV bit and within the limits, between messages. For anything else (control
        frames, fragments, errors) it returns None having taken at most that frame's
        header, kept for :meth:`next_frame`. Compiled engine only: pure, always None.
        """
        if not cython.compiled:
            return None
        if (  # type: ignore[unreachable]
            not self._exact
            or self._remaining
            or self._pos != self._end
            or self._state & STATE_FRAGMENTED
            or self.extensions
            or self.skip_header_check
            or self.max_fragments < 1
        ):
            return None
        server: cython.bint = self._state & STATE_SERVER_SIDE != 0
        n: cython.Py_ssize_t
        i: cython.int
        err: cython.int
        read = self._read
        fd: cython.int = -1
        if _RAW_SOCKETS:
            sock = self.source
            if type(sock) is Conn and not sock.pending:
                sock = sock.socket
            if type(sock) is _SOCKET:
                fd = sock.fileno()
        buf: uchar_ptr = cython.cast(uchar_ptr, PyByteArray_AS_STRING(self._buffer))
        got: cython.Py_ssize_t = 0
        peeked: cython.bint = False
        if fd >= 0:
            # A look at the header without taking it: header and payload then come in
            # one readv, and a frame that is not plain leaves the stream untouched.
            while True:
                with cython.nogil:
                    got = wsio_sock_peek(fd, buf, 14)
                if got >= 0:
                    break
                err = errno
                if err == EINTR:
                    PyErr_CheckSignals()
                    continue
                if err in (EAGAIN, EWOULDBLOCK):  # a timeout: Python's calls wait
                    got = 0
                    fd = -1
                    break
                raise OSError(err, os.strerror(err))
            if fd >= 0:
                if got < 2:
                    return None  # end of stream, or a header still coming: next_frame
                peeked = True
        if not peeked:
            # RFC 6455 §5.2: the shortest header is 2 bytes, 6 with the masking key a
            # client's frames carry; reading that much takes nothing past a valid frame
            # (an unmasked one from a client fails the connection anyway).
            first: cython.Py_ssize_t = 6 if server else 2
            while got < 2:
                n = _read_some(read, -1, buf + got, first - got, cython.NULL, 0)
                if not n:
                    self._pos, self._end = 0, got  # next_frame says which error it is
                    return None
                got += n
        b0: cython.int = buf[0]
        b1: cython.int = buf[1]
        opcode: cython.int = b0 & 0x0F
        masked: cython.bint = (b1 & 0x80) != 0
        length: cython.longlong = b1 & 0x7F
        size: cython.Py_ssize_t = 2 + (2 if length == 126 else 8 if length == 127 else 0)
        size += 4 if masked else 0
        # RFC 6455 §5.2, §5.3: FIN set, RSV clear, a data opcode, masked iff from a client.
        plain: cython.bint = (
            (b0 & 0xF0) == 0x80
            and opcode in (_TEXT, _BINARY)
            and (want == 0 or opcode == want)
            and masked == server
        )
        if plain and got < size and not peeked:
            # The rest of the header, exactly (the length's extension and the key).
            while got < size:
                n = _read_some(read, -1, buf + got, size - got, cython.NULL, 0)
                if not n:
                    break
                got += n
        if not plain or got < size:
            if not peeked:
                self._pos, self._end = 0, got  # next_frame starts from these bytes
            return None
        if length == 126:
            length = (buf[2] << 8) | buf[3]
        elif length == 127:
            length = 0
            for i in range(2, 10):
                length = (length << 8) | buf[i]
        if (
            length > self.max_frame_size
            or length > self.max_message_size
            or length < 0
            or (length > _AHEAD_MIN and length > self._proven)
        ):
            # Over a limit: next_frame raises PayloadTooBigError. Longer than any frame
            # this connection delivered: a header is a promise, not bytes, so the slow
            # path makes room as the bytes arrive (see _read_frame_rest).
            if not peeked:
                self._pos, self._end = 0, got
            return None
        key: uchar_ptr = buf + size - 4
        n_payload: cython.Py_ssize_t = length
        out = PyBytes_FromStringAndSize(cython.NULL, n_payload)
        p: uchar_ptr = cython.cast(uchar_ptr, PyBytes_AS_STRING(out))
        checking: cython.bint = opcode == _TEXT and self.check_utf8
        message = self._message
        if checking:
            self._state = message.take(opcode, True, length, self._state, True)
        # What is still to take: the header (if only peeked at), then the payload.
        head: cython.Py_ssize_t = size if peeked else 0
        done: cython.Py_ssize_t = 0
        while head or done < n_payload:
            n = _read_some(read, fd, buf + size - head, head, p + done, n_payload - done)
            if not n:
                if head:
                    raise UnexpectedEOFError("end of stream in a frame header")
                self._remaining = n_payload - done
                raise self._eof_in_payload()
            if n <= head:
                head -= n
                continue
            n -= head
            head = 0
            if masked:
                wsio_mask_xor(p + done, p + done, n, key, done)  # RFC 6455 §5.3
            if checking:
                message.feed_ptr(p + done, n)  # a bad byte fails before the rest comes
            done += n
        if checking:
            message.end()
        self._frame_open = False
        self._message_done = True
        self._mask = None
        return out, _TEXT_OPCODE if opcode == _TEXT else _BINARY_OPCODE

    # The payload as a stream.

    def readable(self) -> bool:
        """Always True: a Reader is a readable binary stream."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read payload bytes of the current message into ``buffer``; 0 at its end."""
        with memoryview(buffer) as raw:
            dst = raw.cast("B") if raw.format != "B" or raw.ndim != 1 else raw
            if not len(dst):
                return 0
            while True:
                if self._remaining:
                    return self._read_payload(dst[: self._remaining])
                if not self._advance():
                    return 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` payload bytes of the current message (all of it if negative)."""
        if size < 0:
            return self.readall()
        while True:
            if self._remaining:
                take = min(size, self._remaining, self._end - self._pos)
                if take:
                    # Unmask and check in our own buffer, then one copy out.
                    return bytes(self._consume(self._view[self._pos : self._pos + take]))
                chunk = bytearray(min(size, self._remaining))
                n = self._read_payload(memoryview(chunk))
                del chunk[n:]
                return bytes(chunk)
            if not self._advance():
                return b""

    def readall(self) -> bytes:
        """The rest of the current message (a new bytes object)."""
        data = b""
        whole: bytearray | None = None
        while True:
            if self._remaining:
                # Each frame's payload goes straight into a bytes object of its size: a
                # one-frame message is read with no copy after the socket's.
                chunk = self._read_frame_rest()
                if whole is not None:
                    whole += chunk
                elif data:
                    whole = bytearray(data)
                    whole += chunk
                else:
                    data = chunk
            elif not self._advance():
                return data if whole is None else bytes(whole)

    def __iter__(self) -> Iterator[bytes]:
        """The rest of the current message, chunk by chunk."""
        while chunk := self.read(65536):
            yield chunk

    # Private.

    def _advance(self) -> bool:
        # The current frame is read to its end: go on to the next fragment, or finish.
        if self._frame_open:
            header = self._header
            assert header is not None
            if header.fin:
                self._finish()
                return False
        elif self._message_done:
            return False
        elif not self._state & STATE_FRAGMENTED:
            raise LocalProtocolError("no frame to read: call next_frame() first")
        self.next_frame()  # a continuation, or a control frame handled on the way
        return True

    def _finish(self) -> None:
        self._frame_open = False
        self._message_done = True
        if self._checking:
            self._checking = False
            self._message.end()

    def _read_frame_rest(self) -> bytes:
        # The rest of the current frame's payload (not empty), unmasked and checked.
        n: cython.Py_ssize_t = self._remaining
        done: cython.Py_ssize_t = 0
        if n > self._proven and n > _AHEAD_MIN:
            # A header is a promise, not bytes: a frame longer than any this connection
            # delivered grows its room as its bytes arrive (at most 4 times what came,
            # 64 KiB at least), so announcing 16 MiB and stopping costs 64 KiB, not 16
            # (gobwas/ws #223); one copy at the end, once per new size.
            scratch = bytearray(_AHEAD_MIN)
            while done < n:
                if done == len(scratch):
                    scratch += bytes(min(n, 4 * done) - done)
                with memoryview(scratch)[done:] as part:
                    done += self._read_payload(part)
            self._proven = n
            return bytes(scratch)
        if cython.compiled:
            # A new bytes object is written in place before anyone else sees it.
            out = PyBytes_FromStringAndSize(cython.NULL, n)  # type: ignore[unreachable]
            view = PyMemoryView_FromMemory(PyBytes_AS_STRING(out), n, PyBUF_WRITE)
            while done < n:
                done += self._read_payload(view[done:] if done else view)
            return out
        scratch = bytearray(n)
        view = memoryview(scratch)
        while done < n:
            done += self._read_payload(view[done:])
        view.release()
        return bytes(scratch)

    def _consume(self, chunk: memoryview) -> memoryview:
        # Unmask and check bytes of the current frame that are in our buffer.
        n = len(chunk)
        if self._mask is not None:
            cipher(chunk, self._mask, self._mask_offset)
            self._mask_offset += n
        if self._checking:
            self._message.feed(chunk)
        self._pos += n
        self._remaining -= n
        return chunk

    def _read_payload(self, dst: memoryview) -> cython.Py_ssize_t:
        # Read payload bytes into dst (no longer than what remains of the frame).
        available = self._end - self._pos
        if available:
            n = min(len(dst), available)
            dst[:n] = self._view[self._pos : self._pos + n]
            self._pos += n
        elif self._exact or len(dst) >= len(self._buffer):
            n = self._read(dst)  # large reads go straight to the caller's buffer
            if not n:
                raise self._eof_in_payload()
        else:
            self._pos = self._end = 0
            got = self._read(self._view)
            if not got:
                raise self._eof_in_payload()
            self._end = got
            n = min(len(dst), got)
            dst[:n] = self._view[:n]
            self._pos = n
        if self._mask is not None:
            cipher(dst[:n], self._mask, self._mask_offset)
            self._mask_offset += n
        if self._checking:
            self._message.feed(dst[:n])
        self._remaining -= n
        return n

    def _eof_in_payload(self) -> UnexpectedEOFError:
        return UnexpectedEOFError(f"end of stream with {self._remaining} payload bytes to come")

    def _read_control_payload(self, length: int) -> memoryview:
        if not self._fill(length):
            raise self._eof_in_payload()
        payload = self._view[self._pos : self._pos + length]
        if self._mask is not None:
            cipher(payload, self._mask)
        self._pos += length
        self._remaining = 0
        return payload

    def _skip(self, count: int) -> None:
        while count:
            available = self._end - self._pos
            if not available:
                self._pos = self._end = 0
                want = len(self._view) if not self._exact else min(count, len(self._view))
                got = self._read(self._view[:want])
                if not got:
                    raise self._eof_in_payload()
                self._end = available = got
            n = min(count, available)
            self._pos += n
            count -= n
            self._remaining -= n
            self._mask_offset += n

    def _fill(self, size: cython.Py_ssize_t, most: cython.Py_ssize_t = 0) -> cython.bint:
        # Have at least ``size`` bytes in the buffer from _pos; False at end of stream.
        # Reading exactly, a read may take up to ``most`` bytes (if larger) of what is
        # there: bytes known to be the current frame's, never waited for.
        available = self._end - self._pos
        if available >= size:
            return True
        if most < size:
            most = size
        if self._pos + most > len(self._buffer):
            self._buffer[0:available] = self._view[self._pos : self._end]
            self._pos, self._end = 0, available
        while self._end - self._pos < size:
            stop = self._pos + most if self._exact else len(self._buffer)
            got = self._read(self._view[self._end : stop])
            if not got:
                return False
            self._end += got
        return True

    def _read_header(self) -> Header:
        if not self._fill(2):
            if self._end == self._pos and not self._state & STATE_FRAGMENTED:
                raise ConnectionEOFError("end of stream before a frame header")
            raise UnexpectedEOFError("end of stream in a frame header or message")
        pos = self._pos
        size = needed_header_size(self._view[pos : pos + 2])
        # A short frame's payload, if it is there, comes in the same read as the rest of
        # its header (the frame's own bytes, nothing of the next one); it is not waited
        # for, so a text payload is still checked as it arrives (fail fast on bad UTF-8).
        short: cython.Py_ssize_t = self._buffer[pos + 1] & 0x7F
        if not self._fill(size, size + short if short <= 125 else size):
            raise UnexpectedEOFError("end of stream in a frame header")
        pos = self._pos
        decoded = decode_header(self._view[pos : pos + size], 0, Header())
        assert decoded is not None
        self._pos = pos + size
        return decoded[0]


def _read_some(
    read: Callable[[memoryview], int],
    fd: cython.int,
    p1: uchar_ptr,
    n1: cython.Py_ssize_t,
    p2: uchar_ptr,
    n2: cython.Py_ssize_t,
) -> cython.Py_ssize_t:
    # Compiled only: read into p1[:n1], then p2[:n2]; the count (0 at end of stream).
    # With a descriptor, one readv, the GIL released as the socket module does; else
    # (or when the socket has a timeout: EAGAIN) the source's own read, of one of them.
    if not cython.compiled:
        raise NotImplementedError("compiled engine only")
    got: cython.Py_ssize_t  # type: ignore[unreachable]
    err: cython.int
    while fd >= 0:
        with cython.nogil:
            got = wsio_sock_readv2(fd, p1, n1, p2, n2)
        if got >= 0:
            return got
        err = errno
        if err == EINTR:
            PyErr_CheckSignals()  # a handler that raises ends the read, as in socket
        elif err in (EAGAIN, EWOULDBLOCK):
            break
        else:
            raise OSError(err, os.strerror(err))
    if n1:
        n = read(PyMemoryView_FromMemory(cython.cast(cython.p_char, p1), n1, PyBUF_WRITE))
    else:
        n = read(PyMemoryView_FromMemory(cython.cast(cython.p_char, p2), n2, PyBUF_WRITE))
    return n or 0


def next_reader(source: Source, state: State | int, **options: object) -> tuple[Header, Reader]:
    """The next frame's header and an exact-reading :class:`Reader` for its message.

    Control frames inside a fragmented message are dropped (pass ``on_intermediate``
    in ``options`` to see them). The reader reads nothing ahead, so the stream is left
    at the end of the message once it has been read.
    """
    options.setdefault("buffer_size", 0)
    reader = Reader(source, state, **options)  # type: ignore[arg-type]
    return reader.next_frame(), reader
