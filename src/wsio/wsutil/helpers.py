"""One-call helpers: read or write a whole message on a connection.

The ``read_*`` helpers read exactly the bytes of one message (nothing ahead), so they
can be mixed with any other reads of the same stream. They answer pings and the
closing handshake themselves, on the same connection: don't write to it from another
thread meanwhile unless it is a :class:`wsio.LockedSink`. Bad input from the peer is
answered with the right Close frame (1002, 1007 or 1009) before the exception reaches
the caller.

The ``write_*`` helpers send a whole message in one call. On a :class:`wsio.LockedSink`
they are safe from several threads at once: each message goes out whole, never
interleaved with another thread's frames, over TCP or TLS. On a bare socket they are
not: two threads' large messages mix bytes inside frames.
"""

from __future__ import annotations

import threading
from typing import NamedTuple, Protocol

from wsio._engine.framing import Frame, Header, encode_header_into
from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio._engine.mask import mask_into
from wsio.exceptions import ProtocolError
from wsio.frameio import Sink, Source, write_all, write_frame
from wsio.frames import OpCode, State, header_size, new_mask
from wsio.wsutil.handler import ControlHandler, write_close
from wsio.wsutil.reader import Reader

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
    """One exact (``buffer_size=0``) Reader per thread, reset for each call: a message
    read by the helpers costs no Reader, buffer or handler of its own."""

    reader: Reader | None = None


_readers = _Readers()


def _exact_reader(conn: Connection, state: State | int, max_message_size: int) -> Reader:
    # A Reader reset onto ``conn``: nothing of a previous call (or of a call that
    # raised mid-message) survives reset(); it reads nothing ahead, like a new one.
    reader = _readers.reader
    if reader is None:
        reader = _readers.reader = Reader(conn, state, buffer_size=0)
    else:
        reader.reset(conn, state)
    reader.max_message_size = max_message_size
    return reader


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
    handler: ControlHandler | None = None

    def control(header: Header, payload: memoryview) -> None:
        # The handler (and its Writer) is made only when a control frame comes.
        nonlocal handler
        if handler is None:
            handler = ControlHandler(conn, state)
        handler.handle(header, payload)

    reader = _exact_reader(conn, state, max_message_size)
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
            return payload, OpCode(opcode)
    except ProtocolError as error:
        # RFC 6455 §7.1.7: _Fail the WebSocket Connection_ sends the close code first.
        if handler is None or not handler.close_sent:
            try:
                write_close(conn, state, error.close_code)
            except OSError:
                pass
        raise
    finally:
        reader.on_intermediate = None  # the thread's Reader keeps no closure alive


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
    n = len(payload)
    client = int(state) & _CLIENT_BIT
    if n <= _SHORT and op in (_TEXT, _BINARY):
        # The common small message: its two header bytes and payload in one buffer,
        # one write (RFC 6455 §5.2: FIN, the opcode, the MASK bit and a 7-bit length).
        if client:
            # RFC 6455 §5.3: a client masks every frame with a fresh 4-byte key.
            mask = new_mask()
            wire = bytearray(6 + n)
            wire[0] = 0x80 | op
            wire[1] = 0x80 | n
            wire[2:6] = mask
            mask_into(memoryview(wire)[6:], payload, mask)
            write_all(dest, wire)
        else:
            write_all(dest, bytes((0x80 | op, n)) + payload)
        return
    header = Header(True, 0, int(op), False, None, n)
    if client:
        header.masked = True
        header.mask = new_mask()
        wire = bytearray(header_size(header) + n)
        start = encode_header_into(wire, 0, header)
        mask_into(memoryview(wire)[start:], payload, header.mask)
        write_all(dest, wire)
    else:
        write_frame(dest, Frame(header, payload))


def write_client_message(
    dest: Sink, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send a message from the client side (masked)."""
    write_message(dest, _CLIENT, op, payload)


def write_client_text(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a text message from the client side."""
    write_message(dest, _CLIENT, OpCode.TEXT, payload)


def write_client_binary(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a binary message from the client side."""
    write_message(dest, _CLIENT, OpCode.BINARY, payload)


def write_server_message(
    dest: Sink, op: OpCode | int, payload: bytes | bytearray | memoryview
) -> None:
    """Send a message from the server side (unmasked)."""
    write_message(dest, _SERVER, op, payload)


def write_server_text(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a text message from the server side."""
    write_message(dest, _SERVER, OpCode.TEXT, payload)


def write_server_binary(dest: Sink, payload: bytes | bytearray | memoryview) -> None:
    """Send a binary message from the server side."""
    write_message(dest, _SERVER, OpCode.BINARY, payload)


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
