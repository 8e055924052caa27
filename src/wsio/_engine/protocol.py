"""The WebSocket connection without I/O (RFC 6455 §5–§7, RFC 7692): bytes in, events and bytes out.

A :class:`ServerProtocol` or :class:`ClientProtocol` is one side of one connection after
the opening handshake. The I/O layer (blocking sockets, asyncio, trio, a test) moves
bytes and keeps time; everything else is here:

- bytes in: :meth:`~Protocol.receive_data` (copies), or :meth:`~Protocol.get_buffer` +
  :meth:`~Protocol.buffer_updated` (read straight into the protocol's buffer, the shape
  of ``asyncio.BufferedProtocol``), and :meth:`~Protocol.receive_eof`;
- events out, in arrival order, from :meth:`~Protocol.events_received`:
  :class:`TextMessage`, :class:`BinaryMessage` (whole messages) or, with
  ``streaming=True``, :class:`Chunk` (data as it arrives); :class:`Ping`,
  :class:`Pong`, :class:`Close`;
- bytes out: the ``send_*`` methods queue frames, :meth:`~Protocol.data_to_send` hands
  them over as a list of buffers for ``writelines``/``sendmsg``;
- :meth:`~Protocol.close_expected`: when to stop reading and close the TCP connection.

A peer that breaks the protocol never makes ``receive_data`` raise: the connection is
failed (RFC 6455 §7.1.7) with the code that answers the violation (1002, 1007, 1009;
1011 for an internal error), the Close frame is queued, parsing stops, and the
exception is kept in :attr:`~Protocol.error`. Sending what the state forbids raises
:class:`~wsio.exceptions.InvalidStateError` and sends nothing.

The per-frame path (header decode into a C struct, the §5 checks on plain ints, the
fragment rules, unmasking in place, UTF-8 fused with the unmasking) is C when compiled,
and reachable from Cython through protocol.pxd; see ``Protocol.next_piece``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

from wsio._engine.framing import (
    MAX_CONTROL_PAYLOAD,
    MAX_PAYLOAD_LENGTH,
    STATE_CLIENT_SIDE,
    STATE_SERVER_SIDE,
    _encode,
)
from wsio._engine.limits import (
    DEFAULT_MAX_FRAGMENTS,
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE,
)
from wsio._engine.mask import cipher, mask_into
from wsio.exceptions import (
    InvalidStateError,
    InvalidUTF8Error,
    LocalProtocolError,
    ProtocolError,
)
from wsio.frames import (
    check_close_frame_data,
    close_frame_body,
    is_sendable_close_code,
    new_mask,
    parse_close_frame_data,
)

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # C names from protocol.pxd (which cimports the framing, mask and utf8 C path).
    from cython.cimports.wsio._engine.protocol import (  # type: ignore[import-untyped]
        MessageState,
        PyBUF_SIMPLE,
        PyBuffer_FillInfo,
        PyBuffer_Release,
        PyByteArray_AS_STRING,
        PyByteArray_FromStringAndSize,
        PyByteArray_GET_SIZE,
        PyByteArray_Resize,
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
        PyBytes_GET_SIZE,
        PyObject_GetBuffer,
        PyUnicode_DecodeUTF8,
        buffer_ptr,
        buffer_t,
        cbytes_ptr,
        cchar_ptr,
        check_fields,
        check_limits,
        decode_fields,
        key_t,
        memcpy,
        memmove,
        put_header,
        take_mask,
        uchar_ptr,
        wsio_acc_append,
        wsio_acc_clear,
        wsio_acc_take,
        wsio_bytearray_clear,
        wsio_mask_xor,
        wsio_utf8_str,
    )
else:
    from wsio._engine.framing import _Fields, check_fields, check_limits, decode_fields
    from wsio._engine.message import MessageState

__all__ = [
    "BinaryMessage",
    "Chunk",
    "Close",
    "ClientProtocol",
    "ConnectionState",
    "Event",
    "Ping",
    "Pong",
    "Protocol",
    "SENDABLE",
    "ServerProtocol",
    "TRANSITIONS",
    "TextMessage",
    "WHOLE_FRAME_MAX",
]

_Bytes = bytes | bytearray | memoryview


class _Window:
    # Compiled only: the writable buffer protocol over a bytes object that no one else
    # holds yet, so that reads and unmasking fill it in place before it is handed out
    # as a message's data (CPython lets a new bytes object be written until it is
    # shared). A memoryview of it keeps the bytes alive: a view used past its documented
    # lifetime reads stale data, never freed memory.

    def __init__(self, target: bytes) -> None:
        self.target = target
        self.length = len(target)

    def __getbuffer__(self, view: buffer_ptr, flags: cython.int) -> None:
        if cython.compiled:
            PyBuffer_FillInfo(view, self, PyBytes_AS_STRING(self.target), self.length, 0, flags)


# ---------------------------------------------------------------------------------------
# Events. Each is slotted and read-only when compiled; dispatch on the type (``match``
# works: each has __match_args__). What a payload is and how long it lives is said on
# each class.


class TextMessage:
    """A whole text message, UTF-8 checked: ``data`` is a ``str`` (an owned copy), or
    the UTF-8 ``bytes`` with ``decode_text=False``."""

    __slots__ = ("data",)
    __match_args__ = ("data",)

    def __init__(self, data: str | bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is TextMessage and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TextMessage({_short(self.data)})"


class BinaryMessage:
    """A whole binary message: ``data`` is ``bytes`` (owned: a copy, or the object a
    large message was read into)."""

    __slots__ = ("data",)
    __match_args__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is BinaryMessage and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BinaryMessage({_short(self.data)})"


class Chunk:
    """Data as it arrives (``streaming=True``): a data frame, or a piece of a large one.

    ``opcode`` is the message's (1 text, 2 binary) on every chunk of it. ``data`` is a
    memoryview into the protocol's buffer, unmasked, valid until the next
    ``receive_data``/``get_buffer`` call (copy what you keep); a compressed message's
    chunks are owned ``bytes``, already inflated. Text is UTF-8 checked as it arrives
    (a character may be split between chunks). ``frame_finished`` and
    ``message_finished`` say whether this chunk ends its frame and its message.
    """

    __slots__ = ("opcode", "data", "frame_finished", "message_finished")
    __match_args__ = ("opcode", "data", "frame_finished", "message_finished")

    def __init__(
        self, opcode: int, data: _Bytes, frame_finished: bool, message_finished: bool
    ) -> None:
        self.opcode = opcode
        self.data = data
        self.frame_finished = frame_finished
        self.message_finished = message_finished

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Chunk
            and self.opcode == other.opcode
            and bytes(self.data) == bytes(other.data)
            and self.frame_finished == other.frame_finished
            and self.message_finished == other.message_finished
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Chunk({self.opcode}, {_short(bytes(self.data))}, "
            f"frame_finished={self.frame_finished}, message_finished={self.message_finished})"
        )


class Ping:
    """A Ping frame; ``data`` is its payload (owned ``bytes``, at most 125)."""

    __slots__ = ("data",)
    __match_args__ = ("data",)

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is Ping and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ping({self.data!r})"


class Pong:
    """A Pong frame; ``data`` is its payload (owned ``bytes``, at most 125)."""

    __slots__ = ("data",)
    __match_args__ = ("data",)

    def __init__(self, data: bytes = b"") -> None:
        self.data = data

    def __eq__(self, other: object) -> bool:
        return type(other) is Pong and self.data == other.data

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Pong({self.data!r})"


class Close:
    """A Close frame, received or sent: ``code`` (1005 for an empty body) and ``reason``."""

    __slots__ = ("code", "reason")
    __match_args__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return type(other) is Close and self.code == other.code and self.reason == other.reason

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Close({self.code}, {self.reason!r})"


#: Every event :meth:`Protocol.events_received` returns.
Event = TextMessage | BinaryMessage | Chunk | Ping | Pong | Close


def _short(data: object) -> str:
    text = repr(data[:40]) if isinstance(data, (str, bytes)) else repr(data)
    return text + (
        f"...(+{len(data) - 40})" if isinstance(data, (str, bytes)) and len(data) > 40 else ""
    )


# ---------------------------------------------------------------------------------------
# The connection's state, as data.


class ConnectionState(enum.IntEnum):
    """Where the closing handshake stands (RFC 6455 §7)."""

    #: Messages flow both ways.
    OPEN = 1
    #: This side sent a Close frame and waits for the peer's (nothing more is sent).
    CLOSING = 2
    #: Both Close frames exchanged, or the connection failed or ended: close the TCP
    #: connection (see :meth:`Protocol.close_expected`).
    CLOSED = 3


# The states and the buffer sizes below are C constants when compiled (no dict lookup or
# boxing on the per-frame path).
_OPEN = cython.declare(cython.int, 1)
_CLOSING = cython.declare(cython.int, 2)
_CLOSED = cython.declare(cython.int, 3)

#: The state machine: (state, what happened) -> the next state. A pair not here cannot
#: happen: ``receive_close`` and ``receive_eof`` in CLOSED are ignored (nothing is read
#: after a Close frame or the end of the stream); a send in a state whose
#: :data:`SENDABLE` set lacks it raises InvalidStateError.
TRANSITIONS: Final[Mapping[tuple[ConnectionState, str], ConnectionState]] = {
    # RFC 6455 §7.1.2: "Once an endpoint has both sent and received a Close control
    # frame, that endpoint SHOULD _Close the WebSocket Connection_".
    (ConnectionState.OPEN, "send_close"): ConnectionState.CLOSING,
    # RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously
    # send a Close frame, the endpoint MUST send a Close frame in response" - at once,
    # so receiving one in OPEN ends the handshake.
    (ConnectionState.OPEN, "receive_close"): ConnectionState.CLOSED,
    (ConnectionState.CLOSING, "receive_close"): ConnectionState.CLOSED,
    # RFC 6455 §7.1.7: _Fail the WebSocket Connection_ (a Close frame is sent if none
    # was), and the end of the stream, end everything.
    (ConnectionState.OPEN, "fail"): ConnectionState.CLOSED,
    (ConnectionState.CLOSING, "fail"): ConnectionState.CLOSED,
    (ConnectionState.OPEN, "receive_eof"): ConnectionState.CLOSED,
    (ConnectionState.CLOSING, "receive_eof"): ConnectionState.CLOSED,
}

#: What may be sent in each state. RFC 6455 §5.5.1: "After sending a Close frame, the
#: endpoint MUST NOT send any more data frames"; wsio sends no control frame either.
#: One allowance: when the peer's Close (or a violation) ends the connection, the Close
#: frame this side answers with goes out at the next :meth:`Protocol.data_to_send`, and
#: until then messages and pings may still be sent in answer to the events before it
#: (§5.5.1: "An endpoint MAY delay sending a Close frame until its current message is
#: sent"); they go out first.
SENDABLE: Final[Mapping[ConnectionState, frozenset[str]]] = {
    ConnectionState.OPEN: frozenset({"text", "binary", "continuation", "ping", "pong", "close"}),
    ConnectionState.CLOSING: frozenset(),
    ConnectionState.CLOSED: frozenset(),
}

# The receive buffer starts this small, is allocated on first use, doubles only when
# the bytes received fill it, and goes back to this once drained after a large frame.
_MIN_BUFFER = cython.declare(cython.Py_ssize_t, 4096)
# A data frame longer than this is taken in pieces as it arrives (Chunk events when
# streaming, else appended to its message); shorter ones whole.
_PIECE_MIN = cython.declare(cython.Py_ssize_t, 4096)
# Unmask-and-validate works in blocks this size, so the validator reads bytes the
# unmasking has just left in L1.
_FUSE_BLOCK = cython.declare(cython.Py_ssize_t, 8192)
# Outgoing payloads up to this size are copied behind their header into one buffer;
# longer ones are their own buffer in data_to_send() (not copied on the server side).
_INLINE_MAX = cython.declare(cython.Py_ssize_t, 4096)
# The send buffer's block kept between writes by default (clear_output, keep_output):
# small frames (an echo of up to a few hundred bytes) reuse it, an idle connection holds
# no more than this.
_KEPT_OUTPUT = cython.declare(cython.Py_ssize_t, 512)
# The read buffer's view before the buffer is allocated (nothing is read into it).
_NO_VIEW = memoryview(b"")
# Full reads double the buffer up to this; once drained, a buffer larger than this (grown
# for a frame taken whole) is dropped for a small one, so an idle connection never keeps
# more (a busy one keeps what its traffic uses, with no allocation per read).
_KEEP_MAX = cython.declare(cython.Py_ssize_t, 262144)
#: The default ``whole_frame_max`` (see protocol.pxd) of a protocol that assembles
#: messages, and what an I/O layer that hands out whole frames sets: data frames up to
#: 1 MiB are read whole into a buffer that grows as their bytes arrive (see _AHEAD);
#: longer ones come in pieces, so a declared length costs nothing until its bytes arrive.
WHOLE_FRAME_MAX: Final = 1 << 20
# Compiled, a whole message (one FIN frame, uncompressed, binary or text kept as bytes)
# longer than this is read straight into the bytes object its event holds: no copy out
# of the read buffer. Shorter ones are copied (a bytes object, a view and a window per
# message cost more than a copy of a few KiB).
_DIRECT_MIN = cython.declare(cython.Py_ssize_t, 65536)
# A message read in place takes at most this much per read (see Protocol._direct_view).
_DIRECT_READ = cython.declare(cython.Py_ssize_t, 262144)
# A frame header is a promise, not bytes: room for a frame taken whole is made as its
# bytes arrive, at most _AHEAD times what has arrived (at least _AHEAD_MIN), so a peer
# that announces 1 MiB and stops costs 64 KiB, not 1 MiB (gobwas/ws #223; a thousand
# such connections would otherwise commit a GiB). A frame no longer than one this
# connection already delivered whole gets all its room at once (its peer has paid for
# that much in bytes): the steady state of an honest peer stays one allocation, no copy.
_AHEAD = cython.declare(cython.Py_ssize_t, 4)
_AHEAD_MIN = cython.declare(cython.Py_ssize_t, 65536)
_NO_LIMIT = cython.declare(cython.longlong, MAX_PAYLOAD_LENGTH)
_NO_KEY: Final = b"\0\0\0\0"


def _limit(value: int | None) -> int:
    if value is None:
        return int(_NO_LIMIT)
    if value < 0:
        raise ValueError("limits must be >= 0 (or None for no limit)")
    return value


class Protocol:
    """One side of a WebSocket connection, without I/O; use :class:`ServerProtocol` or
    :class:`ClientProtocol`.

    Keywords: ``max_frame_size`` (declared payload length of one frame),
    ``max_message_size`` (a whole message, after decompression), ``max_fragments``
    (frames in one message): over a limit, the connection fails with 1009. None means
    no limit. ``auto_pong`` answers each Ping with a Pong. ``streaming`` gives data as
    :class:`Chunk` events instead of whole messages. ``decode_text`` gives text
    messages as ``str`` (else UTF-8 ``bytes``). ``extensions`` are the negotiated ones,
    e.g. ``[PerMessageDeflate(parameters)]``, in the order the handshake agreed.
    """

    def __init__(
        self,
        *,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int | None = DEFAULT_MAX_FRAGMENTS,
        auto_pong: bool = True,
        streaming: bool = False,
        decode_text: bool = True,
        extensions: Sequence[Any] = (),
    ) -> None:
        raise TypeError("use ServerProtocol or ClientProtocol")

    def _setup(
        self,
        client: bool,
        max_frame_size: int | None,
        max_message_size: int | None,
        max_fragments: int | None,
        auto_pong: bool,
        streaming: bool,
        decode_text: bool,
        extensions: Sequence[Any],
    ) -> None:
        self.is_client = client
        self.max_frame_size = _limit(max_frame_size)
        self.max_message_size = _limit(max_message_size)
        self.max_fragments = _limit(max_fragments)
        self.auto_pong = auto_pong
        self.streaming = streaming
        self.decode_text = decode_text
        # The pipeline: each extension gets a codec of its own for this connection;
        # the bits they claim are the only RSV bits check_fields lets through.
        codecs = []
        allowed: cython.int = 0
        for extension in extensions:
            bits: cython.int = extension.rsv
            if bits & allowed or not 0 < bits <= 7:
                raise ValueError(f"extension {extension!r} claims RSV bits already taken")
            allowed |= bits
            codecs.append(extension.bind(client=client, max_message_size=max_message_size))
        self.extensions = tuple(codecs)
        self._allowed_rsv = allowed
        self._state = _OPEN
        #: "local" or "remote": who sent the first Close frame (None before).
        self.close_initiator: str | None = None
        #: The Close frame this side sent, and the one received (None before).
        self.close_sent: Close | None = None
        self.close_rcvd: Close | None = None
        #: What failed the connection: a ProtocolError (with ``close_code``) for what the
        #: peer sent, any other exception for an internal error (1011).
        self.error: Exception | None = None
        self.reading = True
        self.whole_frame_max = 0 if streaming else min(WHOLE_FRAME_MAX, self.max_frame_size)
        self.direct_max = 0
        self.inline_max = _INLINE_MAX
        self.keep_output = _KEPT_OUTPUT
        self._buf = bytearray()  # allocated on first use
        # Until then one empty view shared by every protocol (get_buffer makes the real
        # one first): a memoryview each is ~180 bytes per idle connection.
        self._whole = _NO_VIEW
        self._start = self._end = 0
        self._filled = False
        if not cython.compiled:
            self.frame = _Fields()
        self._in_frame = self._whole_pending = False
        self._remaining = self._frame_pos = 0
        self.piece_offset = self.piece_length = self.piece_position = 0
        self.piece_ends_frame = False
        self._flags = STATE_CLIENT_SIDE if client else STATE_SERVER_SIDE
        self._msg_opcode = 0
        self._msg_codec = None
        self._msg_checked = False
        # Size, frame count, fragmented flag and UTF-8 of the message being received:
        # the rules wsutil.Reader shares.
        self._msg = MessageState()
        self._first_piece = True
        self._direct = False
        self._direct_ok = False
        self._proven = 0
        self._target: Any = None
        self._tview: Any = None
        self._fill = 0
        self._acc = bytearray()  # pure mode; compiled, _accp (see protocol.pxd)
        self._acc_len = 0
        self._events: list[Event] = []
        self._out: list[_Bytes] = []
        self._tail = bytearray()
        self._send_codec = None
        self._pending_close: bytes | None = None
        self._send_fragmented = False

    # -- state ----------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """OPEN, CLOSING or CLOSED (see :data:`TRANSITIONS`)."""
        return ConnectionState(self._state)

    @property
    def close_code(self) -> int | None:
        """The peer's close code: 1005 for a Close without one, 1006 if the connection
        ended without a Close frame, None while it is not closed."""
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        return 1006 if self._state == _CLOSED else None

    @property
    def close_reason(self) -> str | None:
        """The peer's close reason ("" with none), None while it is not closed."""
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        return "" if self._state == _CLOSED else None

    @property
    def buffer_size(self) -> int:
        """Bytes the receive buffer holds now (0 until first used), with a large message
        being read straight into its own bytes: what this connection costs in reading
        memory."""
        if self._direct and self._whole_pending:
            return len(self._buf) + len(self._target)
        return len(self._buf)

    def close_expected(self) -> cython.bint:
        """True once no more frames will be exchanged: send what :meth:`data_to_send`
        holds, then close the TCP connection.

        RFC 6455 §7.1.1: the server closes the TCP connection first; a client waits a
        little (close_timeout) for the server to do so, then closes it itself.
        """
        closed: cython.bint = self._state == _CLOSED
        return closed

    def _transition(self, event: str) -> None:
        # Looked up by the plain int: an IntEnum member hashes and compares as its value
        # (and ConnectionState(...) is a Python-level call, twice per connection).
        self._state = TRANSITIONS[(self._state, event)]

    # -- bytes in -------------------------------------------------------------------

    def receive_data(self, data: _Bytes) -> None:
        """Take received bytes (copied; ``data`` is not kept) and parse them.

        Never raises for what the peer sent: see ``error``.
        """
        n: cython.Py_ssize_t = len(data)
        if n == 0 or not self.reading:
            return
        if self._direct and self._whole_pending:
            # A large message's bytes go straight into its own bytes object; what
            # follows it, into the buffer.
            k: cython.Py_ssize_t = self._feed_direct(data)
            self._run()
            if k == n or not self.reading:
                return
            data = memoryview(data)[k:]
            n -= k
        self._reserve(self._end - self._start + n)
        end: cython.Py_ssize_t = self._end
        self._buf[end : end + n] = data
        self._end = end + n
        self._run()

    def get_buffer(self, sizehint: cython.Py_ssize_t = -1) -> Any:
        """A writable view to read the next bytes into (``asyncio.BufferedProtocol``).

        Valid until :meth:`buffer_updated`; its size is the protocol's choice
        (``sizehint`` is ignored): 4 KiB, allocated on first use; twice that when the
        bytes received filled it (up to 256 KiB); for a frame taken whole (see
        ``whole_frame_max``), room for the rest of it, read in place: at most 4 times
        what arrived (64 KiB at least) until the frame is no longer than one this
        connection already delivered, then all of it at its header; back to 4 KiB once
        drained if it had grown larger than 256 KiB.
        Compiled, a whole message over 64 KiB kept as bytes (binary, or text with
        ``decode_text=False``) is read straight into the ``bytes`` its event will hold:
        the view is the next part of it (up to 256 KiB a read, unmasked while in cache),
        and the message is never copied.
        Calling this ends the lifetime of the views earlier :class:`Chunk` events hold.
        """
        if self._direct and self._whole_pending:
            return self._direct_view()  # the rest of a large message, in place
        capacity: cython.Py_ssize_t = len(self._buf)
        if capacity == 0:
            self._shrink()
            return self._whole
        end: cython.Py_ssize_t = self._end
        pending: cython.Py_ssize_t = end - self._start
        if self._whole_pending and self.frame.length > _PIECE_MIN:
            # A large frame is read in place, in the room made for it, which grows as
            # its bytes arrive (a small one goes on under the rules below).
            if end == capacity:
                self._grow_pending()
                if self._direct:
                    return self._direct_view()
                end = self._end
            elif (
                self._filled
                and capacity < _KEEP_MAX
                and self._start + cython.cast(cython.Py_ssize_t, self.frame.length) <= capacity
            ):
                # The frame has all its room, and the last read took all it was given:
                # more is queued behind it. Double the room (to at most _KEEP_MAX) so
                # that one read takes the frames behind this one too, not one read per
                # frame (several 8 KiB messages in flight).
                self._reserve(min(2 * capacity, _KEEP_MAX))
                return self._whole[self._end :]
            return self._whole[end:] if end else self._whole
        if pending == 0:
            self._start = self._end = 0
            if capacity > _KEEP_MAX:
                self._shrink()  # the large frame is over: an idle connection holds 4 KiB
            return self._whole
        if pending == capacity:
            self._reserve(2 * capacity)
        elif self._filled and capacity < _KEEP_MAX:
            # Not past _KEEP_MAX: a buffer above it is dropped once drained, and a busy
            # connection would allocate it again on every burst.
            self._reserve(min(2 * capacity, _KEEP_MAX))
        else:
            self._reserve(pending)
        return self._whole[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        """Record that ``nbytes`` were written into the view from :meth:`get_buffer`, and
        parse them."""
        self.add_bytes(nbytes)
        if self.reading:
            self._run()

    def add_bytes(self, nbytes: cython.Py_ssize_t) -> cython.int:
        """For Cython callers: record ``nbytes`` written into :meth:`get_buffer`'s view
        without parsing them; then :meth:`next_piece` until it gives 0."""
        if self._direct and self._whole_pending:
            if nbytes < 0 or self._fill + nbytes > len(self._target):
                raise ValueError("more bytes than the buffer holds")
            self._fill += nbytes
            return 0
        if nbytes < 0 or self._end + nbytes > len(self._buf):
            raise ValueError("more bytes than the buffer holds")
        self._end += nbytes
        self._filled = self._end == len(self._buf)  # the read took all the room it had
        return 0

    def receive_eof(self) -> None:
        """The peer ended the stream: the connection is CLOSED (1006 unless a Close
        frame came first)."""
        self.reading = False
        if self._state != _CLOSED:
            self._transition("receive_eof")

    def events_received(self) -> list[Event]:
        """The events parsed since the last call, in arrival order (the list is yours)."""
        events = self._events
        self._events = []
        return events

    def _shrink(self) -> cython.int:
        self._buf = bytearray(_MIN_BUFFER)
        self._whole = memoryview(self._buf)
        return 0

    def _reserve(self, size: cython.Py_ssize_t, fresh: cython.bint = False) -> cython.int:
        # Make the buffer hold at least ``size`` bytes with the unparsed ones at the
        # front. In place, that move kills the views handed out; a new bytearray (when
        # growing, or ``fresh``: views from this pass are still queued in events) leaves
        # them intact on the old one, and a view the caller holds never blocks a resize.
        start: cython.Py_ssize_t = self._start
        end: cython.Py_ssize_t = self._end
        pending: cython.Py_ssize_t = end - start
        buf = self._buf
        capacity: cython.Py_ssize_t = len(buf)
        if size > capacity or fresh:
            if size > capacity:
                # Doubling, but not past _KEEP_MAX unless ``size`` asks for more.
                capacity = max(size, min(2 * capacity, _KEEP_MAX), _MIN_BUFFER)
            if cython.compiled:
                # Not zero-filled: its pages are touched only as bytes arrive.
                new = PyByteArray_FromStringAndSize(cython.NULL, capacity)
            else:
                new = bytearray(capacity)
            if pending:
                new[0:pending] = buf[start:end]
            self._buf = new
            self._whole = memoryview(new)
        elif start and pending:
            if cython.compiled:
                p = cython.cast(uchar_ptr, PyByteArray_AS_STRING(buf))
                memmove(p, p + start, pending)
            else:
                buf[0:pending] = buf[start:end]
        self._start = 0
        self._end = pending
        return 0

    # -- the per-frame path ---------------------------------------------------------

    def _run(self) -> cython.int:
        """Parse what is buffered into events; a violation fails the connection."""
        try:
            while self.reading and self.next_piece():
                self.handle_piece()
        except Exception as exc:  # a violation, or a bug or MemoryError (1011): no escape
            self.fail_with_error(exc)
        if self._start == self._end and not self._whole_pending:
            self._start = self._end = 0
            if len(self._buf) > _KEEP_MAX:
                self._shrink()  # after a large frame, the large buffer goes
        return 0

    def handle_piece(self) -> cython.int:
        """For Cython callers: what :meth:`receive_data` does with each piece
        :meth:`next_piece` finds: events, the automatic Pong, the closing handshake."""
        if self.frame.opcode >= 8:
            self._control(self.frame.opcode)
        else:
            self._data()
        return 0

    def piece_data(self) -> uchar_ptr:
        """Compiled only: where the current piece's payload is (``piece_length`` bytes,
        unmasked), valid until the next get_buffer/receive_data call."""
        if self._direct:
            return cython.cast(uchar_ptr, PyBytes_AS_STRING(self._target)) + self.piece_offset
        return cython.cast(uchar_ptr, PyByteArray_AS_STRING(self._buf)) + self.piece_offset

    def piece_bytes(self) -> Any:
        """Compiled: the ``bytes`` object the current piece fills whole when it is a
        message read in place (see :meth:`get_buffer`), to keep without a copy; else None."""
        if self._direct and not self._whole_pending:
            return self._target
        return None

    def piece_view(self) -> Any:
        """The current piece's payload as a view into the read buffer (unmasked), valid
        until the next get_buffer/receive_data call: copy what you keep."""
        off: cython.Py_ssize_t = self.piece_offset
        if self._direct:
            return self._tview[off : off + self.piece_length]
        return self._whole[off : off + self.piece_length]

    def piece_inflates(self) -> cython.bint:
        """True when the current data piece belongs to a compressed message
        (:meth:`handle_piece` inflates it into Chunk events)."""
        return self._msg_codec is not None

    def take_events(self) -> Any:
        """The events parsed since the last call (the list is yours), or None when there
        are none: :meth:`events_received` without a new list per call."""
        if not self._events:
            return None
        events = self._events
        self._events = []
        return events

    def next_piece(self) -> cython.int:
        """Find the next frame, or the next piece of a large one: 1, or 0 for more bytes.

        On 1, ``frame`` holds the frame's header and ``piece_offset``/``piece_length`` its payload
        (or the piece), unmasked in place; ``piece_position`` is the piece's offset in the
        payload and ``piece_ends_frame`` says whether it ends the frame. Raises
        ProtocolError (with its close code) for a violation.
        """
        start: cython.Py_ssize_t = self._start
        avail: cython.Py_ssize_t = self._end - start
        n: cython.Py_ssize_t
        if self._in_frame:
            if self._whole_pending:
                if self._direct:
                    return self._take_direct()
                return self._take_whole(start, avail)
            # The rest of a large data frame, handed out as it arrives.
            if avail == 0:
                return 0
            n = (
                avail
                if avail < self._remaining
                else cython.cast(cython.Py_ssize_t, self._remaining)
            )
            self.piece_offset = start
            self.piece_length = n
            self.piece_position = self._frame_pos
            self._frame_pos += n
            self._remaining -= n
            self.piece_ends_frame = self._remaining == 0
            self._in_frame = not self.piece_ends_frame
            self._start = start + n
            self._unmask(start, n, self.piece_position, self._msg.text)
            if self.piece_ends_frame and self.frame.fin and self._msg.text:
                self._msg.end()  # RFC 3629: text may not end inside a character
            return 1
        if self._direct:
            self._drop_direct()  # the last message read in place is its event's now
        size: cython.Py_ssize_t
        if cython.compiled:
            size = decode_fields(self._buf, start, self._end, cython.address(self.frame))
        else:
            size = decode_fields(self._buf, start, self._end, self.frame)
        if size == 0:
            return 0
        op: cython.int = self.frame.opcode
        fin: cython.bint = self.frame.fin
        length: cython.longlong = self.frame.length
        rsv: cython.int = self.frame.rsv
        # RFC 7692 §6.1: an extension's bits go on a message's first frame only (a
        # continuation or control frame with RSV1 fails the connection).
        check_fields(
            op,
            fin,
            rsv,
            self.frame.masked,
            length,
            self._flags,
            self._allowed_rsv if (op == 1 or op == 2) else 0,
        )
        whole: cython.bint = length <= avail - size
        if op < 8:
            # The limits, checked at the header; a compressed message's size is
            # capped after inflating (the codec's decompressor), not on the wire.
            codec = self._msg_codec if op == 0 else (None if rsv == 0 else self._codec_for(rsv))
            self._msg.check(
                op,
                length,
                self.max_frame_size,
                self.max_message_size if codec is None else _NO_LIMIT,
                self.max_fragments,
            )
        elif length > self.max_frame_size:
            check_limits(length, self.max_frame_size, 0, 0, 0, 0)
        pend: cython.bint = False
        direct: cython.bint = False
        if op < 8:
            # A frame up to whole_frame_max that has not all arrived is taken now and
            # given whole once it has (the buffer is grown for it, below). A longer one
            # waits while it is small binary; else it is taken in pieces as it arrives:
            # text, so that bad UTF-8 fails fast (RFC 6455 §8.1; Autobahn 6.4), and any
            # large frame, so the read buffer stays small and a message grows only in
            # its own buffer.
            pend = not whole and length <= self.whole_frame_max
            if not whole and length <= self.direct_max:
                # A whole message the I/O layer lets be read into its own bytes, streaming
                # or not, whatever whole_frame_max (it takes the piece as the message).
                direct = (
                    cython.compiled
                    and length > _DIRECT_MIN
                    and fin
                    and op != 0
                    and codec is None
                    and (op == 2 or not self.decode_text)
                )
                pend = pend or direct
            if (
                not whole
                and not pend
                and (
                    avail == size
                    or not (
                        (codec is None and (op == 1 or (op == 0 and self._msg_opcode == 1)))
                        or length > _PIECE_MIN
                    )
                )
            ):
                return 0
            # The frame is taken: the message state follows it.
            if op:
                self._msg_opcode = op
                self._msg_codec = codec
                self._first_piece = True
            # Text is checked as it arrives where it must fail fast (fragments,
            # pieces), where no str is made, and in frames over _PIECE_MIN, whose str
            # is then built from checked bytes (wsio_utf8_str: 1.3-2.6x faster than
            # CPython's decoder on text that is not all ASCII, as fast on ASCII); a
            # short whole text frame that becomes a str is checked by CPython's decoder
            # (one call, fastest on short strings). Compressed text is checked after
            # inflating.
            checked: cython.bint = (
                op == 1
                and codec is None
                and (
                    self.streaming
                    or not self.decode_text
                    or not fin
                    or not whole
                    or length > _PIECE_MIN
                )
            )
            if op:
                self._msg_checked = checked
            self._flags = self._msg.take(op, fin, length, self._flags, checked)
        elif not whole:
            return 0
        start += size
        self.piece_position = 0
        if pend:
            self._direct_ok = direct or (
                cython.compiled
                and length > _DIRECT_MIN
                and fin
                and op != 0  # a whole message: the first frame and the last
                and codec is None
                and not self.streaming
                and (op == 2 or not self.decode_text)  # its bytes are the event's data
            )
            self._in_frame = self._whole_pending = True
            self._remaining = length
            self._frame_pos = 0
            self._start = start
            # Room for the frame, as much as its peer has paid for (see _AHEAD): the
            # rest is read in place behind what arrived.
            room: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, length)
            if length > self._proven:
                room = min(room, max(_AHEAD_MIN, _AHEAD * (self._end - start)))
            if self._direct_ok and room == length:
                return self._start_direct(start)
            if len(self._buf) - start < room:
                # Compacting makes room for a frame the buffer can hold; a larger one
                # gets a buffer of its size, with room for the next header behind it.
                # Chunk views of this pass still wait in the events, or queued output
                # may be views of this buffer (an I/O layer that writes a read pass's
                # answers at its end): not in place.
                fresh: cython.bint = (self.streaming and len(self._events) > 0) or len(
                    self._out
                ) > 0
                if room <= len(self._buf):
                    self._reserve(room, fresh)
                else:
                    self._reserve(room + _MIN_BUFFER, fresh)
            return self._take_whole(self._start, self._end - self._start)
        if whole:
            n = cython.cast(cython.Py_ssize_t, length)
            self.piece_ends_frame = True
        else:
            # A large frame in streaming mode: hand out what has arrived.
            n = avail - size
            self._in_frame = True
            self._remaining = length - n
            self._frame_pos = n
            self.piece_ends_frame = False
        self.piece_offset = start
        self.piece_length = n
        self._start = start + n
        self._unmask(start, n, 0, op < 8 and self._msg.text)
        if fin and whole and op < 8 and self._msg.text:
            self._msg.end()  # RFC 3629: text may not end inside a character
        return 1

    def _take_whole(self, start: cython.Py_ssize_t, avail: cython.Py_ssize_t) -> cython.int:
        # A frame taken whole: unmask (and check, for text) the bytes that arrived since
        # the last call, while they are in cache; 1 once the frame is all in.
        done: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, self._frame_pos)
        n: cython.Py_ssize_t
        if avail > done:
            n = avail - done
            if n > self._remaining:
                n = cython.cast(cython.Py_ssize_t, self._remaining)
            self._unmask(start + done, n, done, self._msg.text)
            self._frame_pos = done + n
            self._remaining -= n
        if self._remaining:
            return 0
        n = cython.cast(cython.Py_ssize_t, self._frame_pos)
        if n > self._proven:
            self._proven = n
        self._in_frame = self._whole_pending = False
        self.piece_offset = start
        self.piece_length = n
        self.piece_position = 0
        self.piece_ends_frame = True
        self._start = start + n
        if self.frame.fin and self._msg.text:
            self._msg.end()  # RFC 3629: text may not end inside a character
        return 1

    def _grow_pending(self) -> cython.int:
        # The room made for a frame taken whole is full and the frame is not: room for
        # _AHEAD times what arrived, or, once that is all of it, all of it (straight in
        # the event's bytes when the message may be read there).
        start: cython.Py_ssize_t = self._start
        arrived: cython.Py_ssize_t = self._end - start
        length: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, self.frame.length)
        room: cython.Py_ssize_t = min(length, max(_AHEAD_MIN, _AHEAD * arrived))
        if self._direct_ok and room == length:
            self._start_direct(start)
            if len(self._buf) > _KEEP_MAX:
                self._shrink()  # the frame left it: an idle buffer holds 4 KiB
            return 0
        self._reserve(room + _MIN_BUFFER if room == length else room)
        return 0

    def _start_direct(self, start: cython.Py_ssize_t) -> cython.int:
        # Compiled only: the frame of a large whole message is taken (its limits checked,
        # so its length is one the connection accepts; a bytes object's pages, like the
        # buffer's, are touched only as bytes arrive). Its bytes go into the bytes object
        # the event will hold: what has arrived (the first _frame_pos of them already
        # unmasked in the buffer), the rest read in place.
        if cython.compiled:
            n: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, self.frame.length)
            arrived: cython.Py_ssize_t = self._end - start  # less than n: not whole
            target = PyBytes_FromStringAndSize(cython.NULL, n)
            window: _Window = _Window.__new__(_Window)
            window.target = target
            window.length = n
            self._tview = memoryview(window)
            self._target = target
            memcpy(PyBytes_AS_STRING(target), PyByteArray_AS_STRING(self._buf) + start, arrived)
            self._fill = arrived
            self._start = self._end = 0  # the buffer is drained
            self._in_frame = self._whole_pending = self._direct = True
            self._remaining = n - self._frame_pos
        return self._take_direct()

    def _direct_view(self) -> Any:
        # The next part of a large message read in place: at most _DIRECT_READ bytes, so
        # that each read is unmasked (and checked) while its bytes are still in cache,
        # not after a kernel buffer of several MB was copied into cold memory.
        fill: cython.Py_ssize_t = self._fill
        return self._tview[fill : fill + _DIRECT_READ]

    def _take_direct(self) -> cython.int:
        # Compiled only: _take_whole for a message read into its own bytes.
        done: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, self._frame_pos)
        n: cython.Py_ssize_t = self._fill - done
        if cython.compiled and n:
            p = cython.cast(uchar_ptr, PyBytes_AS_STRING(self._target)) + done
            self._unmask_at(p, n, done, self._msg.text)
            self._frame_pos = done + n
            self._remaining -= n
        if self._remaining:
            return 0
        if self._fill > self._proven:
            self._proven = self._fill
        self._in_frame = self._whole_pending = False
        self.piece_offset = 0
        self.piece_length = self._fill
        self.piece_position = 0
        self.piece_ends_frame = True
        if self._msg.text:
            self._msg.end()  # RFC 3629: text may not end inside a character
        return 1

    def _feed_direct(self, data: Any) -> cython.Py_ssize_t:
        # Compiled only: receive_data's bytes, up to the end of the large message being
        # read, copied into its bytes object; how many were taken.
        k: cython.Py_ssize_t = 0
        if cython.compiled:
            view = cython.declare(buffer_t)
            PyObject_GetBuffer(data, cython.address(view), PyBUF_SIMPLE)
            k = PyBytes_GET_SIZE(self._target) - self._fill
            if view.len < k:
                k = view.len
            memcpy(PyBytes_AS_STRING(self._target) + self._fill, view.buf, k)
            PyBuffer_Release(cython.address(view))
            self._fill += k
        return k

    def reading_direct(self) -> cython.bint:
        """True while a message is being read in place (see :meth:`get_buffer`) and
        has not all arrived (or is still growing in the read buffer toward that)."""
        return self._direct_ok and self._whole_pending

    def leave_direct(self) -> Any:
        """While a message is being read in place and has not all arrived: go on with
        it in pieces as they arrive (into the read buffer, as a frame longer than
        whole_frame_max), and return the bytes of it that arrived so far (owned,
        unmasked and checked). Else None."""
        if not (self._direct_ok and self._whole_pending):
            return None
        done: cython.Py_ssize_t = cython.cast(cython.Py_ssize_t, self._frame_pos)
        n: cython.Py_ssize_t
        if not self._direct:
            # Still taken whole into the read buffer, growing as it arrives (see
            # _AHEAD): the same, from there.
            n = min(self._end - self._start - done, cython.cast(cython.Py_ssize_t, self._remaining))
            if n:
                self._unmask(self._start + done, n, done, self._msg.text)
                self._frame_pos = done + n
                self._remaining -= n
            if self._remaining == 0:
                return None  # all in: next_piece() gives it whole
            n = cython.cast(cython.Py_ssize_t, self._frame_pos)
            first = bytes(self._whole[self._start : self._start + n])
            self._start += n
            self._whole_pending = False  # still in the frame: the rest comes in pieces
            return first
        n = self._fill - done
        if cython.compiled and n:
            p = cython.cast(uchar_ptr, PyBytes_AS_STRING(self._target)) + done
            self._unmask_at(p, n, done, self._msg.text)
            self._frame_pos = done + n
            self._remaining -= n
        if self._remaining == 0:
            return None  # all in: next_piece() gives it whole
        if cython.compiled:
            first = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self._target), self._fill)
        else:
            first = bytes(self._target[: self._fill])
        self._drop_direct()
        self._whole_pending = False  # still in the frame: the rest comes in pieces
        return first

    def _drop_direct(self) -> cython.int:
        # The message read in place is done with (its event holds it) or failed; views
        # handed out keep it alive through their window.
        self._direct = False
        self._target = self._tview = None
        self._fill = 0
        return 0

    def _unmask(
        self, off: cython.Py_ssize_t, n: cython.Py_ssize_t, pos: cython.longlong, check: cython.bint
    ) -> cython.int:
        # RFC 6455 §5.3 unmasking in place; with ``check``, the UTF-8 check (RFC 6455
        # §8.1) of each block right after it is unmasked, while it is in cache.
        if cython.compiled:
            self._unmask_at(
                cython.cast(uchar_ptr, PyByteArray_AS_STRING(self._buf)) + off, n, pos, check
            )
        elif n:
            view = self._whole[off : off + n]
            if self.frame.masked:
                cipher(view, self.frame.key, pos)
            if check:
                self._msg.feed(view)
        return 0

    def _unmask_at(
        self, p: uchar_ptr, n: cython.Py_ssize_t, pos: cython.longlong, check: cython.bint
    ) -> cython.int:
        # Compiled only: _unmask on n bytes at p.
        if cython.compiled:
            done: cython.Py_ssize_t = 0
            step: cython.Py_ssize_t
            if not check:
                if self.frame.masked:
                    wsio_mask_xor(p, p, n, self.frame.key, pos)
                return 0
            while done < n:
                step = n - done if n - done < _FUSE_BLOCK else _FUSE_BLOCK
                if self.frame.masked:
                    wsio_mask_xor(p + done, p + done, step, self.frame.key, pos + done)
                self._msg.feed_ptr(p + done, step)
                done += step
        return 0

    def _codec_for(self, rsv: int) -> Any:
        for codec in self.extensions:
            if codec.rsv == rsv:
                return codec
        raise ProtocolError(f"no single negotiated extension claims RSV bits {rsv:#05b}")

    def _data(self) -> cython.int:
        off: cython.Py_ssize_t = self.piece_offset
        n: cython.Py_ssize_t = self.piece_length
        frame_done: cython.bint = self.piece_ends_frame
        message_done: cython.bint = frame_done and self.frame.fin
        first: cython.bint = self._first_piece
        self._first_piece = message_done
        kind: cython.int = self._msg_opcode
        codec = self._msg_codec
        if codec is not None:
            # RFC 7692 §7.2.2: inflate, capped at max_message_size while inflating; the
            # text that comes out is what is checked.
            data = codec.inflate(self._whole[off : off + n], first, message_done)
            if kind == 1 and (
                self.streaming or not self.decode_text or not (first and message_done)
            ):
                self._check_bytes(data, message_done)
            if self.streaming:
                self._events.append(Chunk(kind, data, frame_done, message_done))
                return 0
            if first and message_done:
                self._events.append(self._message(kind, data))
                return 0
            if cython.compiled:
                self._append(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
            else:
                self._acc += data
        else:
            if self.streaming:
                chunk: Chunk = Chunk.__new__(Chunk)
                chunk.opcode = kind
                chunk.data = self._whole[off : off + n]
                chunk.frame_finished = frame_done
                chunk.message_finished = message_done
                self._events.append(chunk)
                return 0
            if first and message_done:
                self._events.append(self._whole_message(kind, off, n))
                return 0
            if cython.compiled:
                self._append(PyByteArray_AS_STRING(self._buf) + off, n)
            else:
                self._acc += self._whole[off : off + n]
        if message_done:
            self._events.append(self._assembled(kind))
        return 0

    def _append(self, p: cchar_ptr, n: cython.Py_ssize_t) -> cython.int:
        # Compiled only: add bytes to the message being assembled.
        if cython.compiled:
            wsio_acc_append(cython.address(self._accp), cython.address(self._acc_len), p, n)
        return 0

    def _assembled(self, kind: cython.int) -> Any:
        # The message assembled from its pieces, handed out without a copy when it stays
        # bytes (compiled); text that becomes a str is decoded, which is its UTF-8 check.
        if cython.compiled:
            if kind == 1 and self.decode_text:
                # Every piece of a fragmented message was checked as it arrived (or as
                # it came out of the codec): the str is built without a second check.
                try:
                    if self._accp == cython.NULL:
                        data = ""
                    else:
                        data = wsio_utf8_str(
                            cython.cast(
                                cbytes_ptr, PyBytes_AS_STRING(cython.cast(object, self._accp))
                            ),
                            self._acc_len,
                        )
                finally:
                    wsio_acc_clear(cython.address(self._accp), cython.address(self._acc_len))
                text: TextMessage = TextMessage.__new__(TextMessage)
                text.data = data
                return text
            data = wsio_acc_take(cython.address(self._accp), cython.address(self._acc_len))
            if kind == 1:
                return TextMessage(data)
            return BinaryMessage(data)
        else:
            acc = self._acc
            self._acc = bytearray()
            return self._message(kind, acc)

    def __dealloc__(self) -> None:
        if cython.compiled:
            wsio_acc_clear(cython.address(self._accp), cython.address(self._acc_len))

    def _check_bytes(self, data: bytes, final: cython.bint) -> cython.int:
        # Inflated text: checked as it comes out of the codec.
        self._msg.feed(data)
        if final:
            self._msg.end()
        return 0

    def _whole_message(self, kind: cython.int, off: cython.Py_ssize_t, n: cython.Py_ssize_t) -> Any:
        # A message in one frame, uncompressed: one copy out of the buffer (or one
        # decode, which is also the UTF-8 check), no view made when compiled.
        if cython.compiled:
            if self._direct:
                # Read straight into its own bytes: handed out as it is, no copy.
                if kind == 2:
                    binary_d: BinaryMessage = BinaryMessage.__new__(BinaryMessage)
                    binary_d.data = self._target
                    return binary_d
                text_d: TextMessage = TextMessage.__new__(TextMessage)
                text_d.data = self._target  # checked as it arrived (not decode_text)
                return text_d
            p = PyByteArray_AS_STRING(self._buf) + off
            if kind == 2:
                binary: BinaryMessage = BinaryMessage.__new__(BinaryMessage)
                binary.data = PyBytes_FromStringAndSize(p, n)
                return binary
            text: TextMessage = TextMessage.__new__(TextMessage)
            if self.decode_text:
                if self._msg_checked:
                    text.data = wsio_utf8_str(cython.cast(cbytes_ptr, p), n)
                    return text
                try:
                    text.data = PyUnicode_DecodeUTF8(p, n, b"strict")
                except UnicodeDecodeError:
                    raise InvalidUTF8Error("text is not valid UTF-8") from None
            else:
                text.data = PyBytes_FromStringAndSize(p, n)
            return text
        else:
            return self._message(kind, self._whole[off : off + n])

    def _message(self, kind: cython.int, data: Any) -> Any:
        # A whole message from its bytes (copied). Text that stays bytes was checked as
        # it arrived; text that becomes a str is checked by the decoder.
        if kind == 2:
            return BinaryMessage(bytes(data))
        if self.decode_text:
            try:
                return TextMessage(str(data, "utf-8"))
            except UnicodeDecodeError:
                raise InvalidUTF8Error("text is not valid UTF-8") from None
        return TextMessage(bytes(data))

    def _control(self, op: cython.int) -> cython.int:
        off: cython.Py_ssize_t = self.piece_offset
        data = bytes(self._whole[off : off + self.piece_length])
        if op == 9:
            self._events.append(Ping(data))
            # RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a
            # Pong frame in response, unless it already received a Close frame."
            if self.auto_pong and self._state == _OPEN:
                self._write_frame(True, 10, 0, data)
        elif op == 10:
            self._events.append(Pong(data))
        else:
            self._receive_close(data)
        return 0

    def _receive_close(self, body: bytes) -> None:
        # RFC 6455 §5.5.1: a body is a 2-byte code then a UTF-8 reason; §7.4: only
        # the codes that may be sent are valid (1005 and 1006 never on the wire).
        code, reason = parse_close_frame_data(body)
        if body:
            check_close_frame_data(code, reason)
        close = Close(int(code), reason)
        self.close_rcvd = close
        # RFC 6455 §5.5.1: "after receiving a Close frame ... the endpoint" discards
        # what follows; nothing more is parsed.
        self.reading = False
        if self._state == _OPEN:
            # "... MUST send a Close frame in response. (When sending a Close frame in
            # response, the endpoint typically echos the status code it received.)"
            self.close_initiator = "remote"
            self.close_sent = Close(close.code, "")
            self._pending_close = b"" if not body else body[:2]
        self._transition("receive_close")
        self._events.append(close)

    def fail_with_error(self, error: Any) -> cython.int:
        """Fail the connection for ``error``, kept in ``error``: a ProtocolError with
        its ``close_code``, anything else (a bug, MemoryError, a callback's exception)
        with 1011. Does nothing once CLOSED."""
        if self._state == _CLOSED:
            return 0
        self.error = error
        if isinstance(error, ProtocolError):
            self.fail(error.close_code, str(error))
        else:
            self.fail(1011, "internal error")
        return 0

    def fail(self, code: int = 1011, reason: str = "") -> None:
        """Fail the connection (RFC 6455 §7.1.7): a Close frame with ``code`` and
        ``reason`` goes out at the next :meth:`data_to_send` (unless one was sent
        already), reading stops; the state is CLOSED.

        ``code`` 1006 sends no Close frame at all (the connection is simply dropped).
        Does nothing once CLOSED.
        """
        if self._state == _CLOSED:
            return
        if code != 1006 and not is_sendable_close_code(code):
            raise LocalProtocolError(f"close code {code} may not be sent")
        self.reading = False
        self._in_frame = self._whole_pending = False
        self._drop_direct()
        # A message cut short is dropped now, not when the protocol is.
        if cython.compiled:
            wsio_acc_clear(cython.address(self._accp), cython.address(self._acc_len))
        else:
            self._acc = bytearray()
        if self._state == _OPEN and code != 1006:
            self.close_initiator = "local"
            body = close_frame_body(code, reason)  # cut to fit on a character boundary
            self.close_sent = Close(code, str(body[2:], "utf-8"))
            self._pending_close = body
        self._transition("fail")

    # -- bytes out ------------------------------------------------------------------

    def _refuse(self, kind: str) -> None:
        state = ConnectionState(self._state)
        if kind not in SENDABLE[state]:
            raise InvalidStateError(f"cannot send {kind} in state {state.name}")

    def send_text(
        self, data: str | _Bytes, fin: bool = True, *, compress: bool | None = None
    ) -> None:
        """Queue a text frame (a ``str`` is encoded; bytes must be UTF-8, not checked).

        ``fin=False`` begins a fragmented message, continued with
        :meth:`send_continuation`. ``compress`` overrides the extension's threshold for
        this message. Bytes passed are referenced until :meth:`data_to_send` hands them
        out (long ones are not copied on the server side): do not change them before.
        """
        self.send_data(1, data.encode() if isinstance(data, str) else data, fin, compress)

    def send_binary(self, data: _Bytes, fin: bool = True, *, compress: bool | None = None) -> None:
        """Queue a binary frame; see :meth:`send_text`."""
        self.send_data(2, data, fin, compress)

    def send_continuation(self, data: _Bytes, fin: bool = True) -> None:
        """Queue the next frame of the message a ``fin=False`` send began."""
        self.send_data(0, data, fin, None)

    def send_data(
        self, opcode: cython.int, data: Any, fin: cython.bint = True, compress: Any = None
    ) -> cython.int:
        """Queue a data frame: ``opcode`` 1 (text, UTF-8 bytes), 2 (binary) or 0 (the
        next frame of a ``fin=False`` send); what :meth:`send_text`,
        :meth:`send_binary` and :meth:`send_continuation` do, for callers that have the
        opcode. The payload is referenced until :meth:`data_to_send` hands it out."""
        op: cython.int = opcode
        if op < 0 or op > 2:
            raise LocalProtocolError(f"{opcode} is not a data frame's opcode")
        if self._state != _OPEN and self._pending_close is None:
            self._refuse("continuation" if op == 0 else ("text" if op == 1 else "binary"))
        # RFC 6455 §5.4: the fragments of one message are sent in order, not
        # interleaved with another message's.
        if op == 0:
            if not self._send_fragmented:
                raise InvalidStateError("no fragmented message to continue")
        elif self._send_fragmented:
            raise InvalidStateError("a fragmented message is in progress: send_continuation")
        rsv: cython.int = 0
        first: cython.bint = op != 0
        if first:
            codec = None
            if self.extensions:
                candidate = self.extensions[0]
                if compress if compress is not None else len(data) >= candidate.threshold:
                    codec = candidate
            self._send_codec = codec
        codec = self._send_codec
        if codec is not None:
            data = codec.deflate(data, first, fin)
            if first:
                rsv = codec.rsv
        self._write_frame(fin, op, rsv, data)
        self._send_fragmented = not fin
        return 0

    def data_header(self, opcode: cython.int, length: cython.Py_ssize_t, key: uchar_ptr) -> bytes:
        """Compiled only: the header of a whole uncompressed data frame (opcode 1 or 2,
        FIN) of ``length`` bytes that the caller sends itself, right now, right after
        it (nothing is queued; checked as :meth:`send_data`); a client masks the payload
        with the key written to ``key``."""
        if not cython.compiled:
            raise NotImplementedError("data_header is for compiled callers")
        if opcode != 1 and opcode != 2:
            raise LocalProtocolError(f"{opcode} is not a message's first opcode")
        if self._state != _OPEN and self._pending_close is None:
            self._refuse("text" if opcode == 1 else "binary")
        if self._send_fragmented:
            raise InvalidStateError("a fragmented message is in progress: send_continuation")
        self._send_codec = None
        masked: cython.bint = self.is_client
        # RFC 6455 §5.3: "The masking key is a 32-bit value chosen at random by the
        # client. When preparing a masked frame, the client MUST pick a fresh masking
        # key from the set of allowed 32-bit values."
        if masked:
            take_mask(key)
        hsize: cython.Py_ssize_t = 2 if length <= 125 else (4 if length <= 65535 else 10)
        if masked:
            hsize += 4
        header = PyBytes_FromStringAndSize(cython.NULL, hsize)
        put_header(
            cython.cast(uchar_ptr, PyBytes_AS_STRING(header)),
            True,
            opcode,
            0,
            length,
            masked,
            cython.cast(cbytes_ptr, key),
        )
        return header

    def send_ping(self, data: str | _Bytes = b"") -> None:
        """Queue a Ping frame (payload at most 125 bytes)."""
        self._send_control(9, "ping", data)

    def send_pong(self, data: str | _Bytes = b"") -> None:
        """Queue an unsolicited Pong frame (payload at most 125 bytes)."""
        self._send_control(10, "pong", data)

    def _send_control(self, op: cython.int, kind: str, data: str | _Bytes) -> None:
        if self._state != _OPEN and self._pending_close is None:
            self._refuse(kind)
        payload = data.encode() if isinstance(data, str) else data
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise LocalProtocolError(f"control frame payload is {len(payload)} bytes, over 125")
        self._write_frame(True, op, 0, payload)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake: queue a Close frame; the state is CLOSING.

        ``code`` 1005 sends a Close frame without a body (then no reason). Other codes
        must be ones that may be sent (RFC 6455 §7.4), and the reason at most 123 bytes
        of UTF-8; else LocalProtocolError.
        """
        if self._state != _OPEN:
            self._refuse("close")
        if code == 1005:
            if reason:
                raise LocalProtocolError("a Close frame without a code has no reason")
            body = b""
        else:
            if not is_sendable_close_code(code):
                raise LocalProtocolError(f"close code {code} may not be sent")
            encoded = reason.encode()
            if len(encoded) > MAX_CONTROL_PAYLOAD - 2:
                raise LocalProtocolError("close reason over 123 bytes")
            body = code.to_bytes(2, "big") + encoded
        self.close_initiator = "local"
        self.close_sent = Close(code, reason)
        self._write_frame(True, 8, 0, body)
        self._transition("send_close")

    def data_to_send(self) -> list[_Bytes]:
        """The bytes queued since the last call, as buffers for ``writelines``/``sendmsg``.

        The list and the bytearrays in it are yours; a long payload passed to a send on
        the server side appears as the object you passed.
        """
        if self._pending_close is not None:
            # The Close answering the peer's, or failing the connection, goes after
            # what was sent in answer to the events before it (RFC 6455 §5.5.1: "An
            # endpoint MAY delay sending a Close frame until its current message is
            # sent"); nothing can be sent after it.
            self._write_frame(True, 8, 0, self._pending_close)
            self._pending_close = None
        out = self._out
        if self._tail:
            out.append(self._tail)
            self._tail = bytearray()
        if not out:
            return out
        self._out = []
        return out

    def single_output(self) -> Any:
        """Everything queued when it is one buffer (the common case: short frames, each
        header and payload together): the protocol's own bytearray, empty when nothing
        is queued, valid until the next send or :meth:`clear_output`. None when
        :meth:`data_to_send` must be called instead (long payloads queued as buffers of
        their own, or a Close waiting to be appended)."""
        if self._out or self._pending_close is not None:
            return None
        return self._tail

    def clear_output(self) -> cython.int:
        """Empty the buffer :meth:`single_output` returned, once written (up to
        ``keep_output`` bytes of its memory, 512 by default, are kept for the next
        frames)."""
        if cython.compiled:
            wsio_bytearray_clear(self._tail, self.keep_output)
        else:
            self._tail.clear()
        return 0

    def close_pending(self) -> cython.bint:
        """True while a Close (answering the peer's, or failing the connection) waits
        for the next :meth:`data_to_send`: an I/O layer may hold it back until it has
        answered the messages that came before it (RFC 6455 §5.5.1)."""
        return self._pending_close is not None

    def _write_frame(
        self, fin: cython.bint, opcode: cython.int, rsv: cython.int, payload: _Bytes
    ) -> cython.int:
        # RFC 6455 §5.2 header, then the payload: masked by a client (§5.3, a fresh
        # key per frame), copied behind the header when short.
        if cython.compiled:
            return self._write_frame_c(fin, opcode, rsv, payload)
        else:
            # The length in bytes: a memoryview's len() counts its items.
            n = len(payload) if type(payload) is not memoryview else payload.nbytes
            masked = self.is_client
            key = new_mask() if masked else _NO_KEY
            tail = self._tail
            pos = len(tail)
            hsize = (2 if n <= 125 else (4 if n <= 65535 else 10)) + (4 if masked else 0)
            inline = n <= self.inline_max
            tail.extend(bytes(hsize + (n if inline else 0)))
            _encode(tail, pos, fin, rsv, opcode, key if masked else None, n)
            if inline:
                if n:
                    if masked:
                        mask_into(memoryview(tail)[pos + hsize :], payload, key)
                    else:
                        tail[pos + hsize : pos + hsize + n] = payload
                return 0
            self._out.append(tail)
            self._tail = bytearray()
            if masked:
                copy = bytearray(n)
                mask_into(copy, payload, key)
                self._out.append(copy)
            else:
                self._out.append(payload)
            return 0

    def _write_frame_c(
        self, fin: cython.bint, opcode: cython.int, rsv: cython.int, payload: _Bytes
    ) -> cython.int:
        # Compiled only: _write_frame in C calls, no Python object but the output. The
        # key goes from the pool straight into the header (§5.3); the payload is read
        # through its buffer (a bytes object's own pointer), so no slice or view is made.
        if cython.compiled:
            view = cython.declare(buffer_t)
            key = cython.declare(key_t)
            src: uchar_ptr
            n: cython.Py_ssize_t
            borrowed: cython.bint = type(payload) is bytes
            if borrowed:
                src = cython.cast(uchar_ptr, PyBytes_AS_STRING(payload))
                n = PyBytes_GET_SIZE(payload)
            else:
                PyObject_GetBuffer(payload, cython.address(view), PyBUF_SIMPLE)
                src = cython.cast(uchar_ptr, view.buf)
                n = view.len
            try:
                masked: cython.bint = self.is_client
                if masked:
                    take_mask(key)
                tail = self._tail
                pos: cython.Py_ssize_t = PyByteArray_GET_SIZE(tail)
                hsize: cython.Py_ssize_t = 2 if n <= 125 else (4 if n <= 65535 else 10)
                if masked:
                    hsize += 4
                inline: cython.bint = n <= self.inline_max
                PyByteArray_Resize(tail, pos + hsize + (n if inline else 0))
                p = cython.cast(uchar_ptr, PyByteArray_AS_STRING(tail)) + pos
                put_header(p, fin, opcode, rsv, n, masked, cython.cast(cbytes_ptr, key))
                if inline:
                    if masked:
                        wsio_mask_xor(p + hsize, src, n, key, 0)
                    elif n:
                        memcpy(p + hsize, src, n)
                else:
                    self._out.append(tail)
                    self._tail = PyByteArray_FromStringAndSize(cython.NULL, 0)
                    if masked:
                        copy = PyByteArray_FromStringAndSize(cython.NULL, n)
                        dest = cython.cast(uchar_ptr, PyByteArray_AS_STRING(copy))
                        wsio_mask_xor(dest, src, n, key, 0)
                        self._out.append(copy)
                    else:
                        self._out.append(payload)
            finally:
                if not borrowed:
                    PyBuffer_Release(cython.address(view))
        return 0


class ServerProtocol(Protocol):
    """The server side: expects masked frames, sends unmasked ones (RFC 6455 §5.1)."""

    def __init__(
        self,
        *,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int | None = DEFAULT_MAX_FRAGMENTS,
        auto_pong: bool = True,
        streaming: bool = False,
        decode_text: bool = True,
        extensions: Sequence[Any] = (),
    ) -> None:
        self._setup(
            False,
            max_frame_size,
            max_message_size,
            max_fragments,
            auto_pong,
            streaming,
            decode_text,
            extensions,
        )


class ClientProtocol(Protocol):
    """The client side: expects unmasked frames, masks what it sends (RFC 6455 §5.1)."""

    def __init__(
        self,
        *,
        max_frame_size: int | None = DEFAULT_MAX_FRAME_SIZE,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: int | None = DEFAULT_MAX_FRAGMENTS,
        auto_pong: bool = True,
        streaming: bool = False,
        decode_text: bool = True,
        extensions: Sequence[Any] = (),
    ) -> None:
        self._setup(
            True,
            max_frame_size,
            max_message_size,
            max_fragments,
            auto_pong,
            streaming,
            decode_text,
            extensions,
        )
