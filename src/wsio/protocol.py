"""The WebSocket protocol without I/O: run wsio over any transport.

:class:`ServerProtocol` and :class:`ClientProtocol` are one side of a connection after
the opening handshake (do that with :class:`wsio.Upgrader` or :func:`wsio.dial`, or any
other way). The caller moves bytes; the protocol does the rest::

    proto = ServerProtocol(extensions=[PerMessageDeflate(agreed)] if agreed else [])
    while not proto.close_expected():
        data = sock.recv(65536)
        if data:
            proto.receive_data(data)
        else:
            proto.receive_eof()
        for event in proto.events_received():
            match event:
                case TextMessage(text):
                    proto.send_text(text)
                case BinaryMessage(data):
                    proto.send_binary(data)
        sock.sendmsg(proto.data_to_send())
    sock.close()

Events, and how long their payload lives:

- :class:`TextMessage` (``str``, or UTF-8 ``bytes`` with ``decode_text=False``) and
  :class:`BinaryMessage` (``bytes``): whole messages, owned copies; assembled across
  fragments, inflated, UTF-8 checked.
- :class:`Chunk` (``streaming=True``): data as it arrives, a large frame in pieces;
  ``data`` is a memoryview into the protocol's buffer valid until the next
  ``receive_data``/``get_buffer`` call (inflated data is owned ``bytes``).
- :class:`Ping`, :class:`Pong` (owned ``bytes``), :class:`Close` (``code``, ``reason``).
  Pings are answered by the protocol (``auto_pong=True``), and a Close frame is
  answered once, at once.

A peer that breaks the protocol never makes ``receive_data`` raise: the connection is
failed with the close code that answers it (1002, 1007, 1009; 1011 for an internal
error), the Close frame is queued, and ``Protocol.error`` holds the
:class:`~wsio.ProtocolError` (``close_code``). Sending in a state that forbids it
raises :class:`~wsio.InvalidStateError`, and sends nothing. :data:`TRANSITIONS` is the
state machine, written out.

Buffers: the receive buffer is 4 KiB, allocated on first use; a data frame up to 1 MiB
is read whole into a buffer that grows as its bytes arrive (at most 4 times what came,
64 KiB at least, so an announced length costs nothing before its bytes; all of it at the
header once the connection delivered a frame as long), so it is unmasked once and copied
once into its message, and the buffer goes back to 4 KiB after it. An I/O
layer written in Cython can ``cimport`` :class:`Protocol` for the C-level API that
``wsio/_engine/protocol.pxd`` documents (frames with no Python object each; wsio.aio's
callback level uses it).
"""

from __future__ import annotations

from wsio._engine.extensions import DEFAULT_COMPRESSION_THRESHOLD, PerMessageDeflate
from wsio._engine.protocol import (
    SENDABLE,
    TRANSITIONS,
    BinaryMessage,
    Chunk,
    ClientProtocol,
    Close,
    ConnectionState,
    Event,
    Ping,
    Pong,
    Protocol,
    ServerProtocol,
    TextMessage,
)

__all__ = [
    "ServerProtocol",
    "ClientProtocol",
    "Protocol",
    "ConnectionState",
    "TRANSITIONS",
    "SENDABLE",
    "Event",
    "TextMessage",
    "BinaryMessage",
    "Chunk",
    "Ping",
    "Pong",
    "Close",
    "PerMessageDeflate",
    "DEFAULT_COMPRESSION_THRESHOLD",
]
