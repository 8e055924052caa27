"""Frame headers (RFC 6455 §5.2): encoding, decoding, the §5 rules, and a frame parser.

No I/O here. :class:`FrameParser` owns a buffer that the I/O layer reads into
(``get_buffer``/``buffer_updated``, the shape of ``asyncio.BufferedProtocol``) or copies
into (``feed``); it hands out complete frames whose payloads are views into that buffer,
unmasked in place.

The wire format::

      0                   1                   2                   3
      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
     +-+-+-+-+-------+-+-------------+-------------------------------+
     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
     | |1|2|3|       |K|             |                               |
     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
     |     Extended payload length continued, if payload len == 127  |
     + - - - - - - - - - - - - - - - +-------------------------------+
     |                               |Masking-key, if MASK set to 1  |
     +-------------------------------+-------------------------------+
"""

from __future__ import annotations

from typing import Any

from wsio._engine.limits import DEFAULT_MAX_FRAME_SIZE
from wsio._engine.mask import cipher
from wsio.exceptions import LocalProtocolError, PayloadTooBigError, ProtocolError

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # C names from framing.pxd.
    from cython.cimports.wsio._engine.framing import (  # type: ignore[import-untyped]
        PyByteArray_AS_STRING,
        PyBytes_FromStringAndSize,
        cbytes_ptr,
        frame_ptr,
        frame_t,
        memcpy,
        uchar_ptr,
    )

#: The largest header: 2 bytes, an 8-byte length and a 4-byte mask.
MAX_HEADER_SIZE = 14
#: The smallest header: 2 bytes.
MIN_HEADER_SIZE = 2
#: RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less".
MAX_CONTROL_PAYLOAD = 125
#: RFC 6455 §5.2: "the most significant bit MUST be 0" of a 64-bit length.
MAX_PAYLOAD_LENGTH = 2**63 - 1

# The State flags (wsio.State), as plain ints for the compiled checks.
STATE_SERVER_SIDE = 1
STATE_CLIENT_SIDE = 2
STATE_EXTENDED = 4
STATE_FRAGMENTED = 8
# The same, as C constants when compiled, for check_fields (no boxing per frame).
_SERVER_SIDE = cython.declare(cython.int, STATE_SERVER_SIDE)
_CLIENT_SIDE = cython.declare(cython.int, STATE_CLIENT_SIDE)
_FRAGMENTED = cython.declare(cython.int, STATE_FRAGMENTED)
_MAX_CONTROL = cython.declare(cython.longlong, MAX_CONTROL_PAYLOAD)

_BYTES_TYPES = (bytes, bytearray, memoryview)


class Header:
    """A frame header. ``rsv`` is the 3-bit value RSV1·RSV2·RSV3 (RSV1 is 0b100).

    ``mask`` is the 4-byte masking key when ``masked``, else None. Headers compare by
    value and are mutable, so a reader can fill one in place (see ``decode_header``).
    """

    __slots__ = ("fin", "rsv", "opcode", "masked", "mask", "length")

    def __init__(
        self,
        fin: bool = True,
        rsv: int = 0,
        opcode: int = 0,
        masked: bool = False,
        mask: bytes | None = None,
        length: int = 0,
    ) -> None:
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.mask = mask
        self.length = length

    @property
    def rsv1(self) -> bool:
        """RSV1: the permessage-deflate "compressed" bit (RFC 7692 §6)."""
        return bool(self.rsv & 4)

    @property
    def rsv2(self) -> bool:
        """RSV2."""
        return bool(self.rsv & 2)

    @property
    def rsv3(self) -> bool:
        """RSV3."""
        return bool(self.rsv & 1)

    def replace(self, **changes: Any) -> Header:
        """A copy of this header with the given fields changed."""
        copy = Header(self.fin, self.rsv, self.opcode, self.masked, self.mask, self.length)
        for name, value in changes.items():
            setattr(copy, name, value)
        return copy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Header):
            return NotImplemented
        return (
            self.fin == other.fin
            and self.rsv == other.rsv
            and self.opcode == other.opcode
            and self.masked == other.masked
            and self.mask == other.mask
            and self.length == other.length
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        mask = f", mask={self.mask!r}" if self.masked else ""
        return (
            f"Header(fin={self.fin}, rsv={self.rsv:#05b}, opcode={self.opcode}, "
            f"masked={self.masked}{mask}, length={self.length})"
        )


class Frame:
    """A frame: its header and its payload (bytes, bytearray or a memoryview).

    A frame from :class:`FrameParser` has a payload that views the parser's buffer: it
    is valid until the parser is next fed or asked for a buffer; copy what you keep.
    """

    __slots__ = ("header", "payload")

    def __init__(self, header: Header, payload: bytes | bytearray | memoryview) -> None:
        self.header = header
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self.header == other.header and bytes(self.payload) == bytes(other.payload)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        data = bytes(self.payload[:40])
        more = f"...(+{len(self.payload) - 40} bytes)" if len(self.payload) > 40 else ""
        return f"Frame({self.header!r}, payload={data!r}{more})"


def header_size(header: Header) -> int:
    """The number of bytes ``header`` takes on the wire (2 to 14)."""
    return _size_for(header.length, header.masked)


def _size_for(length: cython.longlong, masked: cython.bint) -> cython.int:
    size: cython.int = 2
    if length > 65535:
        size = 10
    elif length > 125:
        size = 4
    if masked:
        size += 4
    return size


def encode_header_into(buf: bytearray | memoryview, pos: int, header: Header) -> int:
    """Write ``header`` into ``buf`` at ``pos``; return the number of bytes written.

    ``buf`` must have room for :func:`header_size` bytes from ``pos``.
    """
    return _encode(
        buf,
        pos,
        header.fin,
        header.rsv,
        header.opcode,
        header.mask if header.masked else None,
        header.length,
    )


def encode_header(header: Header) -> bytes:
    """The wire bytes of ``header``."""
    buf = bytearray(header_size(header))
    encode_header_into(buf, 0, header)
    return bytes(buf)


def _encode(
    buf: bytearray | memoryview,
    pos: cython.Py_ssize_t,
    fin: cython.bint,
    rsv: cython.int,
    opcode: cython.int,
    mask: bytes | None,
    length: cython.longlong,
) -> cython.int:
    if length < 0:
        raise LocalProtocolError("negative payload length")
    if not 0 <= rsv <= 7 or not 0 <= opcode <= 15:
        raise LocalProtocolError("rsv must be 0..7 and opcode 0..15")
    size: cython.int = _size_for(length, mask is not None)
    if pos < 0 or pos + size > len(buf):
        raise ValueError("no room for the header in the buffer")
    first: cython.int = (0x80 if fin else 0) | (rsv << 4) | opcode
    masked: cython.int = 0x80 if mask is not None else 0
    i: cython.Py_ssize_t = pos
    buf[i] = first
    # RFC 6455 §5.2: "In all cases, the minimal number of bytes MUST be used to encode
    # the length".
    if length <= 125:
        buf[i + 1] = masked | length
        i += 2
    elif length <= 65535:
        buf[i + 1] = masked | 126
        buf[i + 2] = (length >> 8) & 0xFF
        buf[i + 3] = length & 0xFF
        i += 4
    else:
        buf[i + 1] = masked | 127
        shift: cython.int
        for shift in range(8):
            buf[i + 2 + shift] = (length >> (56 - 8 * shift)) & 0xFF
        i += 10
    if mask is not None:
        if len(mask) != 4:
            raise LocalProtocolError("a mask is 4 bytes")
        buf[i : i + 4] = mask
        i += 4
    return i - pos


def put_header(
    p: uchar_ptr,
    fin: cython.bint,
    opcode: cython.int,
    rsv: cython.int,
    length: cython.longlong,
    masked: cython.bint,
    key: cbytes_ptr,
) -> cython.int:
    """Compiled only: write a header at ``p`` (room for 14 bytes), no Header object.

    ``key`` is the 4-byte masking key, read only when ``masked``. Returns the size.
    """
    i: cython.int = 2
    k: cython.int
    p[0] = cython.cast(cython.uchar, (0x80 if fin else 0) | (rsv << 4) | opcode)
    bit: cython.int = 0x80 if masked else 0
    # RFC 6455 §5.2: "In all cases, the minimal number of bytes MUST be used to encode
    # the length".
    if length <= 125:
        p[1] = cython.cast(cython.uchar, bit | length)
    elif length <= 65535:
        p[1] = cython.cast(cython.uchar, bit | 126)
        p[2] = cython.cast(cython.uchar, (length >> 8) & 0xFF)
        p[3] = cython.cast(cython.uchar, length & 0xFF)
        i = 4
    else:
        p[1] = cython.cast(cython.uchar, bit | 127)
        for k in range(8):
            p[2 + k] = cython.cast(cython.uchar, (length >> (56 - 8 * k)) & 0xFF)
        i = 10
    if masked:
        memcpy(p + i, key, 4)
        i += 4
    return i


def needed_header_size(first_two: bytes | bytearray | memoryview) -> int:
    """From a header's first two bytes, its whole size (2 to 14)."""
    second: cython.int = first_two[1]
    size: cython.int = 2
    len7: cython.int = second & 0x7F
    if len7 == 126:
        size = 4
    elif len7 == 127:
        size = 10
    if second & 0x80:
        size += 4
    return size


def decode_header(
    data: bytes | bytearray | memoryview, pos: int = 0, into: Header | None = None
) -> tuple[Header, int] | None:
    """Decode the header at ``data[pos:]``: (header, its size), or None if incomplete.

    With ``into``, that Header is filled in and returned instead of a new one. Raises
    :class:`ProtocolError` for a 64-bit length with its top bit set, or a length not
    encoded in the fewest bytes (RFC 6455 §5.2 "MUST").
    """
    available: cython.Py_ssize_t = len(data) - pos
    if available < 2:
        return None
    size: cython.Py_ssize_t = needed_header_size(data[pos : pos + 2])
    if available < size:
        return None
    buf = bytearray(data[pos : pos + size])
    header = into if into is not None else Header()
    if cython.compiled:
        fields = cython.declare(frame_t)
        decode_fields(buf, 0, size, cython.address(fields))
        _fill_header(header, cython.address(fields))
    else:
        pure_fields = _Fields()
        decode_fields(buf, 0, size, pure_fields)
        _fill_header(header, pure_fields)
    return header, size


# The one header decoder: FrameParser here, wsio._engine.protocol and every reader call
# it. Compiled, ``f`` is a C struct (framing.pxd's frame_t) and nothing Python is made;
# uncompiled, it is a _Fields object with the same attributes.


class _Fields:
    """Pure-mode stand-in for framing.pxd's ``frame_t`` struct."""

    __slots__ = ("fin", "rsv", "opcode", "masked", "key", "length", "header_size")

    def __init__(self) -> None:
        self.fin = False
        self.rsv = 0
        self.opcode = 0
        self.masked = False
        self.key = b""
        self.length = 0
        self.header_size = 0


def decode_fields(
    buf: bytearray, pos: cython.Py_ssize_t, end: cython.Py_ssize_t, f: frame_ptr
) -> cython.Py_ssize_t:
    """Decode the header at ``buf[pos:end]`` into ``f``; its size, or 0 if incomplete.

    Raises :class:`ProtocolError` for a length that breaks RFC 6455 §5.2. Reads the
    bytes in place (no copy, no Python object compiled).
    """
    available: cython.Py_ssize_t = end - pos
    if available < 2:
        return 0
    first: cython.int = buf[pos]
    second: cython.int = buf[pos + 1]
    size: cython.Py_ssize_t = 2
    length: cython.longlong = second & 0x7F
    i: cython.int
    if length == 126:
        size = 4
        if available < size:
            return 0
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        # RFC 6455 §5.2: "In all cases, the minimal number of bytes MUST be used to
        # encode the length".
        if length < 126:
            raise ProtocolError("payload length used 2 bytes where 1 was enough")
    elif length == 127:
        size = 10
        if available < size:
            return 0
        if buf[pos + 2] & 0x80:
            # RFC 6455 §5.2: "the most significant bit MUST be 0".
            raise ProtocolError("64-bit payload length has its most significant bit set")
        length = 0
        for i in range(8):
            length = (length << 8) | buf[pos + 2 + i]
        if length <= 65535:
            raise ProtocolError("payload length used 8 bytes where fewer were enough")
    masked: cython.bint = (second & 0x80) != 0
    if masked:
        if available < size + 4:
            return 0
        if cython.compiled:
            memcpy(f.key, PyByteArray_AS_STRING(buf) + pos + size, 4)
        else:
            f.key = bytes(buf[pos + size : pos + size + 4])
        size += 4
    f.fin = (first & 0x80) != 0
    f.rsv = (first >> 4) & 7
    f.opcode = first & 0x0F
    f.masked = masked
    f.length = length
    f.header_size = cython.cast(cython.int, size)
    return size


def _fill_header(header: Header, f: frame_ptr) -> None:
    header.fin = f.fin
    header.rsv = f.rsv
    header.opcode = f.opcode
    header.masked = f.masked
    if cython.compiled:
        header.mask = (
            PyBytes_FromStringAndSize(cython.cast(cython.p_char, f.key), 4) if f.masked else None
        )
    else:
        header.mask = f.key if f.masked else None
    header.length = f.length


def check_header(header: Header, state: int) -> None:
    """Apply every RFC 6455 §5 rule for a received header; raise :class:`ProtocolError`.

    ``state`` is a :class:`wsio.State` value (or its int): which side this is, whether
    an extension was negotiated (EXTENDED), whether a fragmented message is open.
    """
    st: cython.int = state
    check_fields(
        header.opcode,
        header.fin,
        header.rsv,
        header.masked,
        header.length,
        st,
        7 if st & STATE_EXTENDED else 0,
    )


def check_fields(
    opcode: cython.int,
    fin: cython.bint,
    rsv: cython.int,
    masked: cython.bint,
    length: cython.longlong,
    state: cython.int,
    allowed_rsv: cython.int,
) -> cython.int:
    """The RFC 6455 §5 rules for a received frame, on plain ints; raise ProtocolError.

    ``state`` holds the STATE_* flags (side, FRAGMENTED); ``allowed_rsv`` the RSV bits
    the negotiated extensions give a meaning to on this frame (0 with none).
    """
    # RFC 6455 §5.2: "If an unknown opcode is received, the receiving endpoint MUST
    # _Fail the WebSocket Connection_."
    if (3 <= opcode <= 7) or opcode >= 11:
        raise ProtocolError(f"reserved opcode {opcode:#x}")
    if opcode >= 8:
        # RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or
        # less and MUST NOT be fragmented."
        if length > _MAX_CONTROL:
            raise ProtocolError("control frame payload longer than 125 bytes")
        if not fin:
            raise ProtocolError("fragmented control frame")
    # RFC 6455 §5.2: RSV1-3 "MUST be 0 unless an extension is negotiated that defines
    # meanings for non-zero values."
    if rsv & ~allowed_rsv:
        raise ProtocolError("reserved bits set that no negotiated extension defines")
    # RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that
    # is not masked." ... "A client MUST close a connection if it detects a masked
    # frame."
    if state & _SERVER_SIDE and not masked:
        raise ProtocolError("client frame is not masked")
    if state & _CLIENT_SIDE and masked:
        raise ProtocolError("server frame is masked")
    # RFC 6455 §5.4: fragments of one message are not interleaved with another's; a
    # continuation needs a message in progress.
    if opcode == 0:
        if not state & _FRAGMENTED:
            raise ProtocolError("continuation frame with no message in progress")
    elif opcode < 8 and state & _FRAGMENTED:
        raise ProtocolError("new data frame while a fragmented message is in progress")
    return 0


def check_limits(
    length: cython.longlong,
    max_frame_size: cython.longlong,
    message_size: cython.longlong,
    max_message_size: cython.longlong,
    fragments: cython.longlong,
    max_fragments: cython.longlong,
) -> cython.int:
    """The size limits of a received frame, on plain ints; raise PayloadTooBigError (1009).

    ``length`` is the frame's declared payload length; ``message_size`` and ``fragments``
    what its message comes to with it. RFC 6455 §10.4: "implementations that have
    implementation- and/or platform-specific limitations regarding the frame size or
    total message size after reassembly from multiple frames MUST protect themselves
    against exceeding those limits."
    """
    if length > max_frame_size:
        raise PayloadTooBigError(f"frame of {length} bytes is over the limit of {max_frame_size}")
    if message_size > max_message_size:
        raise PayloadTooBigError(
            f"message of {message_size}+ bytes is over the limit of {max_message_size}"
        )
    if fragments > max_fragments:
        raise PayloadTooBigError(f"message of more than {max_fragments} frames")
    return 0


class FrameParser:
    """Splits a byte stream into frames, with payloads unmasked in place.

    Bytes go in through :meth:`get_buffer` + :meth:`buffer_updated` (read straight into
    the parser's buffer, e.g. ``sock.recv_into``) or :meth:`feed` (a copy). Each
    :meth:`next_frame` returns a complete frame or None. A frame's payload is a
    memoryview of the parser's buffer, valid until the next ``get_buffer``/``feed``.

    A frame whose declared length exceeds ``max_frame_size`` raises
    :class:`PayloadTooBigError` as soon as its header is seen: the buffer grows only
    when the bytes that arrived have filled it, never to a length the peer merely
    declares.
    """

    def __init__(
        self,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        buffer_size: int = 65536,
        unmask: bool = True,
    ) -> None:
        if not 0 <= max_frame_size <= MAX_PAYLOAD_LENGTH or buffer_size < MAX_HEADER_SIZE:
            raise ValueError("max_frame_size must be 0..2**63-1 and buffer_size >= 14")
        self.max_frame_size = max_frame_size
        self.unmask = unmask
        self._buffer = bytearray(buffer_size)
        self._view = memoryview(self._buffer)
        self._start = 0  # first byte not yet handed out
        self._end = 0  # end of the bytes received
        if not cython.compiled:
            self._fields = _Fields()

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet part of a returned frame."""
        return self._end - self._start

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """A writable view of free buffer space to read the next bytes into.

        The buffer doubles only when the bytes received so far fill it (issue 8 item 4:
        a declared but unfinished frame does not make it grow).
        """
        pending: cython.Py_ssize_t = self._end - self._start
        capacity: cython.Py_ssize_t = len(self._buffer)
        self._reserve(2 * capacity if pending == capacity else pending)
        return self._view[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Record that ``nbytes`` were written into the view from :meth:`get_buffer`."""
        if nbytes < 0 or self._end + nbytes > len(self._buffer):
            raise ValueError("more bytes than the buffer holds")
        self._end += nbytes

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Copy ``data`` into the buffer."""
        n: cython.Py_ssize_t = len(data)
        if n:
            self._reserve(self._end - self._start + n)
            self._buffer[self._end : self._end + n] = data
            self._end += n

    def _reserve(self, size: cython.Py_ssize_t) -> None:
        # Move the unfinished frame to the front (returned payloads die here), then
        # make the buffer hold at least ``size`` bytes.
        start: cython.Py_ssize_t = self._start
        end: cython.Py_ssize_t = self._end
        pending: cython.Py_ssize_t = end - start
        if start:
            if pending:
                self._buffer[0:pending] = self._view[start:end]
            self._start = 0
            self._end = pending
        if size > len(self._buffer):
            buffer = bytearray(size)
            buffer[0:pending] = self._view[0:pending]
            self._buffer = buffer
            self._view = memoryview(buffer)

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive."""
        start: cython.Py_ssize_t = self._start
        end: cython.Py_ssize_t = self._end
        size: cython.Py_ssize_t
        if cython.compiled:
            size = decode_fields(self._buffer, start, end, cython.address(self._fields))
        else:
            size = decode_fields(self._buffer, start, end, self._fields)
        if size == 0:
            return None
        length: cython.longlong = self._fields.length
        check_limits(length, self.max_frame_size, 0, 0, 0, 0)
        if length > end - start - size:
            return None
        total: cython.Py_ssize_t = size + cython.cast(cython.Py_ssize_t, length)
        payload = self._view[start + size : start + total]
        header = Header()
        if cython.compiled:
            _fill_header(header, cython.address(self._fields))
        else:
            _fill_header(header, self._fields)
        if header.masked and self.unmask:
            cipher(payload, header.mask)  # type: ignore[arg-type]
        self._start = start + total
        return Frame(header, payload)

    def reset(self) -> None:
        """Forget all buffered bytes, ready for a new connection."""
        self._start = self._end = 0
