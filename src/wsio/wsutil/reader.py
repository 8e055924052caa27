"""Reader: one message at a time from a blocking stream, across its fragments."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from wsio._engine.framing import (
    STATE_FRAGMENTED,
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
    # The message bookkeeping the protocol core uses, as C calls (reader.pxd cimports it).
    from cython.cimports.wsio._engine.message import (  # type: ignore[import-untyped,unreachable]
        MessageState,
    )
else:
    from wsio._engine.message import MessageState

__all__ = ["FrameHandler", "Reader", "next_reader"]

#: ``on_continuation(header)`` and ``on_intermediate(header, payload)`` hooks: a control
#: frame's payload is unmasked and valid only until the hook returns.
FrameHandler = Callable[[Header, memoryview], None]

_TEXT = int(OpCode.TEXT)
_CONTINUATION = int(OpCode.CONTINUATION)


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
        """The rest of the current message."""
        first = self.read(max(self._remaining, 65536))
        chunk = self.read(max(self._remaining, 65536)) if first else b""
        if not chunk:
            return first  # the whole message was one read: no second copy
        # Fragments are gathered in one growing buffer, not one object each: a message
        # of many tiny fragments costs its size, not its frame count times an object.
        whole = bytearray(first)
        while chunk:
            whole += chunk
            chunk = self.read(max(self._remaining, 65536))
        return bytes(whole)

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

    def _fill(self, size: cython.Py_ssize_t) -> cython.bint:
        # Have at least ``size`` bytes in the buffer from _pos; False at end of stream.
        available = self._end - self._pos
        if available >= size:
            return True
        if self._pos + size > len(self._buffer):
            self._buffer[0:available] = self._view[self._pos : self._end]
            self._pos, self._end = 0, available
        while self._end - self._pos < size:
            stop = self._pos + size if self._exact else len(self._buffer)
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
        if not self._fill(size):
            raise UnexpectedEOFError("end of stream in a frame header")
        pos = self._pos
        decoded = decode_header(self._view[pos : pos + size], 0, Header())
        assert decoded is not None
        self._pos = pos + size
        return decoded[0]


def next_reader(source: Source, state: State | int, **options: object) -> tuple[Header, Reader]:
    """The next frame's header and an exact-reading :class:`Reader` for its message.

    Control frames inside a fragmented message are dropped (pass ``on_intermediate``
    in ``options`` to see them). The reader reads nothing ahead, so the stream is left
    at the end of the message once it has been read.
    """
    options.setdefault("buffer_size", 0)
    reader = Reader(source, state, **options)  # type: ignore[arg-type]
    return reader.next_frame(), reader
