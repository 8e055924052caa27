"""The raw-frame echo server: frame headers and payloads on a plain socket, no wsutil.

The twin of gobwas/ws's "low-level example without wsutil": accept a TCP connection,
run the opening handshake on it with :func:`wsio.upgrade`, then read each frame's
header, read exactly its payload, unmask it, and write the frame back unmasked. Every
frame goes back as it came, fragments and all; a ping goes back as a pong and a Close
frame is echoed before the connection is closed.

It checks each header against RFC 6455 §5 (``wsio.check_header``) and the code and reason
of a Close frame, and answers a bad one with close code 1002 (1007 for a reason that is
not UTF-8). It does not check that text messages are UTF-8, and its only limit is on the
size of one frame (a payload's buffer grows with the bytes that arrive, up to it):
:mod:`wsio.wsutil` adds those (see echo_low_level.py). The accept loop is
:class:`wsio.server.ThreadedServer`; the handshake runs in the connection's thread, with
a deadline::

    python examples/echo_raw_frames.py --port 8104
"""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Any

import wsio
from wsio.server import ThreadedServer

log = logging.getLogger("echo_raw_frames")

# The whole opening handshake must end within this many seconds.
UPGRADER = wsio.Upgrader(timeout=10.0)


def echo(conn: socket.socket, max_frame_size: int) -> None:
    """Echo frames on an upgraded ``conn`` until a Close frame or end of stream."""
    state = wsio.State.SERVER_SIDE
    while True:
        header = wsio.read_header(conn)
        try:
            wsio.check_header(header, state)
        except wsio.ProtocolError:
            conn.sendall(wsio.COMPILED_CLOSE_PROTOCOL_ERROR)
            raise
        if header.length > max_frame_size:
            conn.sendall(wsio.COMPILED_CLOSE_MESSAGE_TOO_BIG)
            raise wsio.PayloadTooBigError(f"frame of {header.length} bytes")
        if not wsio.is_control(header.opcode):
            # Track whether a fragmented message is open, for check_header's §5.4 rules.
            state = state & ~wsio.State.FRAGMENTED if header.fin else state | wsio.State.FRAGMENTED
        payload = wsio.read_payload(conn, header, max_frame_size=max_frame_size)
        if header.masked and header.mask:
            wsio.cipher(payload, header.mask, 0)
        # RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the client."
        reply = header.replace(masked=False, mask=None)
        if header.opcode == wsio.OpCode.PING:
            # RFC 6455 §5.5.2: the Pong carries the Ping's "Application data".
            reply.opcode = wsio.OpCode.PONG
        if header.opcode == wsio.OpCode.CLOSE:
            check_close(conn, payload)
        if header.opcode != wsio.OpCode.PONG:  # an unsolicited pong needs no answer
            wsio.write_header(conn, reply)
            conn.sendall(payload)
        if header.opcode == wsio.OpCode.CLOSE:
            return


def check_close(conn: socket.socket, payload: bytearray) -> None:
    """Answer a Close frame whose code or reason is invalid with 1002 (or 1007), and raise.

    RFC 6455 §7.4.1: codes 1005 and 1006 "MUST NOT be set as a status code in a Close
    control frame by an endpoint"; §5.5.1: the reason is UTF-8.
    """
    try:
        code, reason = wsio.parse_close_frame_data(payload)
        if payload:  # empty means "no status" (1005); 1005 itself on the wire is invalid
            wsio.check_close_frame_data(code, reason)
    except wsio.ProtocolError as err:
        conn.sendall(
            wsio.compile_frame(wsio.new_close_frame(wsio.close_frame_body(err.close_code)))
        )
        raise


def handle(conn: socket.socket, address: Any, max_frame_size: int) -> None:
    """Upgrade one accepted connection and echo on it; always close it."""
    with conn:
        try:
            handshake = UPGRADER.upgrade(conn)
        except (wsio.HandshakeError, OSError) as err:
            log.info("%s: upgrade refused: %s", address[0], err)
            return
        log.info("%s: connected %s", address[0], handshake)
        try:
            echo(conn, max_frame_size)
            log.info("%s: closed", address[0])
        except (wsio.WebSocketError, OSError) as err:
            log.info("%s: dropped: %r", address[0], err)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8104)
    parser.add_argument(
        "--max-frame-size",
        type=int,
        default=wsio.DEFAULT_MAX_FRAME_SIZE,
        help="close with 1009 above this many bytes in a frame (default %(default)s)",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    with socket.create_server((args.host, args.port)) as listener:
        host, port = listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        server = ThreadedServer(
            listener, lambda conn, address: handle(conn, address, args.max_frame_size)
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
