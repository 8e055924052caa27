"""One-call helpers: read or write a whole message on a connection.

The ``read_*`` helpers read exactly the bytes of one message (nothing ahead), so they
can be mixed with any other reads of the same stream. (Compiled, a message in one frame
on a plain socket is read with a look at its header, MSG_PEEK, then one ``readv``.)
They answer pings and the closing handshake themselves, on the same connection: don't
write to it from another thread meanwhile unless it is a :class:`wsio.LockedSink`. Bad
input from the peer is answered with the right Close frame (1002, 1007 or 1009) before
the exception reaches the caller.

The ``write_*`` helpers send a whole message in one call. On a :class:`wsio.LockedSink`
they are safe from several threads at once: each message goes out whole, never
interleaved with another thread's frames, over TCP or TLS. On a bare socket they are
not: two threads' large messages mix bytes inside frames.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

from wsio._engine.framing import Header
from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.exceptions import ProtocolError
from wsio.frameio import Sink, Source
from wsio.frames import OpCode, State
from wsio.wsutil.handler import ControlHandler, write_close
from wsio.wsutil.reader import Reader
from wsio.wsutil.writer import send_message

__all__ = [
    "Message",
    "read_message",
    "read_client_message",
    "read_server_message",
    "read_data",
    "read_client_data",
    "read_client_text",
    "read_client_binary",
    "read_server_data",
    "read_server_text",
    "read_server_binary",
    "write_message",
    "write_client_message",
    "write_client_text",
    "write_client_binary",
    "write_server_message",
    "write_server_text",
    "write_server_binary",
    "handle_control_message",
    "handle_client_control_message",
    "handle_server_control_message",
]

_SERVER = State.SERVER_SIDE
_CLIENT = State.CLIENT_SIDE
# Plain ints for the per-message path: IntFlag arithmetic costs microseconds.
_CLIENT_BIT = int(State.CLIENT_SIDE)
_TEXT = int(OpCode.TEXT)
_BINARY = int(OpCode.BINARY)
# RFC 6455 §5.2: a payload length of 0-125 fits in the 7-bit field, no extended length.
_SHORT = 125


class Connection(Protocol):
    """A stream read and written like a socket: a socket or a :class:`wsio.Conn`."""

    def recv_into(self, buffer: bytearray | memoryview, nbytes: int = 0, /) -> int: ...

    def sendall(self, data: bytes | bytearray | memoryview, /) -> None: ...


class Message(NamedTuple):
    """A whole message (or control frame): its opcode and unmasked payload."""

    opcode: int
    payload: bytes


def read_message(
    source: Source,
    state: State | int,
    messages: list[Message] | None = None,
    *,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> list[Message]:
    """Read the next data message, or control frame, and return it with any control
    frames that came in the middle of it (those first). Nothing is answered here."""
    result = messages if messages is not None else []

    def keep(header: Header, payload: memoryview) -> None:
        result.append(Message(header.opcode, bytes(payload)))

    reader = Reader(
        source, state, on_intermediate=keep, max_message_size=max_message_size, buffer_size=0
    )
    header = reader.next_frame()
    result.append(Message(header.opcode, reader.readall()))
    return result


def read_client_message(source: Source, messages: list[Message] | None = None) -> list[Message]:
    """:func:`read_message` on the server side (reading what a client sent)."""
    return read_message(source, _SERVER, messages)


def read_server_message(source: Source, messages: list[Message] | None = None) -> list[Message]:
    """:func:`read_message` on the client side (reading what a server sent)."""
    return read_message(source, _CLIENT, messages)


class _Readers(threading.local):
    """One exact (``buffer_size=0``) Reader per thread, reused from call to call: a
    message read by the helpers costs no Reader, buffer or handler of its own."""

    reader: Reader | None = None
    state = 0  # the side its reader was made or reset for


_readers = _Readers()
# The OpCode of each data opcode, looked up rather than made per message.
_DATA_OPCODES = {int(op): op for op in (OpCode.CONTINUATION, OpCode.TEXT, OpCode.BINARY)}


def read_data(
    conn: Connection,
    state: State | int,
    *,
    want: int | None = None,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
) -> tuple[bytes, OpCode]:
    """The payload and opcode of the next data message, answering control frames.

    Pings get pongs; a close is answered and raises :class:`wsio.ClosedError`. With
    ``want`` (TEXT or BINARY), messages of the other kind are skipped.
    """
    # The thread's Reader, on ``conn``. It reads nothing ahead, and read_data leaves it
    # between messages or drops it (on an exception), so one left on the same
    # connection and side is as good as a new one; any other is reset, which keeps
    # nothing of what it read before.
    readers = _readers
    reader = readers.reader
    if reader is None:
        reader = readers.reader = Reader(conn, state, buffer_size=0)
        readers.state = state
    elif reader.source is not conn or readers.state != state:
        reader.reset(conn, state)
        readers.state = state
    reader.max_message_size = max_message_size
    try:
        # The common case, a message in one frame, is read whole in one compiled call;
        # anything else (control frames, fragments, errors) goes the Reader's way.
        plain = reader.read_plain_message(0 if want is None else want)
    except BaseException as error:
        _fail(conn, state, error, None)
        raise
    if plain is not None:
        return plain
    return _read_frames(conn, state, reader, want)


def _read_frames(
    conn: Connection, state: State | int, reader: Reader, want: int | None
) -> tuple[bytes, OpCode]:
    # read_data frame by frame: control frames answered, fragments joined.
    handler: ControlHandler | None = None

    def control(header: Header, payload: memoryview) -> None:
        # The handler (and its Writer) is made only when a control frame comes.
        nonlocal handler
        if handler is None:
            handler = ControlHandler(conn, state)
        handler.handle(header, payload)

    reader.on_intermediate = control
    try:
        while True:
            header = reader.next_frame()
            opcode = header.opcode
            if opcode >= 8:
                control(header, reader.readall())  # type: ignore[arg-type]
                continue
            if want is not None and opcode != want:
                reader.discard()
                continue
            payload = reader.readall()
            reader.on_intermediate = None  # the thread's Reader keeps no closure alive
            return payload, _DATA_OPCODES[opcode]
    except BaseException as error:
        _fail(conn, state, error, handler)
        raise


def _fail(
    conn: Connection, state: State | int, error: BaseException, handler: ControlHandler | None
) -> None:
    # Whatever was read of this message is gone with the Reader: the next call starts
    # on a fresh one.
    _readers.reader = None
    if isinstance(error, ProtocolError) and (handler is None or not handler.close_sent):
        # RFC 6455 §7.1.7: _Fail the WebSocket Connection_ sends the close code first.
        try:
            write_close(conn, state, error.close_code)
        except OSError:
            pass


def read_client_data(conn: Connection) -> tuple[bytes, OpCode]:
    """The next data message a client sent (server side), answering control frames."""
    return read_data(conn, _SERVER)


def read_client_text(conn: Connection) -> bytes:
    """The next text message a client sent; binary messages are skipped."""
    return read_data(conn, _SERVER, want=OpCode.TEXT)[0]


def read_client_binary(conn: Connection) -> bytes:
    """The next binary message a client sent; text messages are skipped."""
    return read_data(conn, _SERVER, want=OpCode.BINARY)[0]


def read_server_data(conn: Connection) -> tuple[bytes, OpCode]:
    """The next data message a server sent (client side), answering control frames."""
    return read_data(conn, _CLIENT)


def read_server_text(conn: Connection) -> bytes:
    """The next text message a server sent; binary messages are skipped."""
    return read_data(conn, _CLIENT, want=OpCode.TEXT)[0]


def read_server_binary(conn: Connection) -> bytes:
    """The next binary message a server sent; text messages are skipped."""
    return read_data(conn, _CLIENT, want=OpCode.BINARY)[0]


def write_message(
    dest: Sink, state: State | int, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send ``payload`` as one final frame; a client masks a copy, never ``payload``.

    Safe from several threads only on a :class:`wsio.LockedSink` (the frame goes out whole).
    """
    send_message(dest, state, op, payload)


def write_client_message(
    dest: Sink, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send a message from the client side (masked)."""
    send_message(dest, _CLIENT, op, payload)


def write_client_text(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a text message from the client side."""
    send_message(dest, _CLIENT, _TEXT, payload)


def write_client_binary(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a binary message from the client side."""
    send_message(dest, _CLIENT, _BINARY, payload)


def write_server_message(
    dest: Sink, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send a message from the server side (unmasked)."""
    send_message(dest, _SERVER, op, payload)


def write_server_text(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a text message from the server side."""
    send_message(dest, _SERVER, _TEXT, payload)


def write_server_binary(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a binary message from the server side."""
    send_message(dest, _SERVER, _BINARY, payload)


def handle_control_message(dest: Sink, state: State | int, message: Message) -> None:
    """Answer a control message read by :func:`read_message` (see ControlHandler)."""
    header = Header(True, 0, message.opcode, False, None, len(message.payload))
    ControlHandler(dest, state).handle(header, message.payload)


def handle_client_control_message(dest: Sink, message: Message) -> None:
    """Answer a control message a client sent (server side)."""
    handle_control_message(dest, _SERVER, message)


def handle_server_control_message(dest: Sink, message: Message) -> None:
    """Answer a control message a server sent (client side)."""
    handle_control_message(dest, _CLIENT, message)
