"""Compressed frames, one at a time: the first wsflate example of gobwas/ws's README.

A server that negotiates permessage-deflate with the default parameters (no context
takeover, so every message stands alone), reads single frames, decompresses the
compressed ones with :func:`wsflate.decompress_frame`, and answers each message with a
compressed acknowledgement built by :func:`wsflate.compress_frame`. A client that does
not offer compression is dropped, as in the Go example. Each connection is upgraded in
its own thread, with a deadline for the handshake, so a client that sends nothing holds
up no one else; the accept loop is :class:`wsio.server.ThreadedServer`::

    python examples/wsflate_frames.py --port 8108
"""

from __future__ import annotations

import argparse
import logging
import socket
from typing import Any

import wsio
from wsio import wsflate
from wsio.handshake import Upgrader
from wsio.server import ThreadedServer

log = logging.getLogger("wsflate_frames")

ACK = b"this is an acknowledgement"


def serve_conn(conn: wsio.Conn, max_message_size: int) -> None:
    """Acknowledge every message on ``conn``, compressed, until the peer closes."""
    while True:
        frame = wsio.unmask_frame_in_place(wsio.read_frame(conn))
        if wsio.is_control(frame.header.opcode):
            if frame.header.opcode == wsio.OpCode.CLOSE:
                # RFC 6455 §5.5.1: answer the Close frame, then the connection is done.
                wsio.write_frame(conn, wsio.new_close_frame(bytes(frame.payload[:2])))
                return
            if frame.header.opcode == wsio.OpCode.PING:
                wsio.write_frame(conn, wsio.new_pong_frame(bytes(frame.payload)))
            continue
        if wsflate.is_compressed(frame.header):
            # Note that even after a successful negotiation both sides may send
            # uncompressed messages (RFC 7692 §6).
            frame = wsflate.decompress_frame(frame, max_message_size=max_message_size)
        log.info("received %d bytes", frame.header.length)
        # Compress the response unconditionally.
        ack = wsflate.compress_frame(wsio.new_text_frame(ACK))
        wsio.write_frame(conn, ack)


def run_conn(sock: socket.socket, addr: Any, max_message_size: int) -> None:
    """Upgrade one accepted socket, serve it and close it, whatever happens."""
    # Default parameters: we use wsflate.compress_frame/decompress_frame, which keep no
    # context between messages. An Extension keeps what one handshake agreed: one each.
    e = wsflate.Extension(parameters=wsflate.DEFAULT_PARAMETERS)
    u = Upgrader(negotiate=e.negotiate, timeout=10.0)  # for the whole handshake
    try:
        conn, _ = u.upgrade_conn(sock)
    except (wsio.HandshakeError, OSError) as err:
        log.info("%s: upgrade error: %s", addr, err)
        sock.close()
        return
    if e.accepted() is None:
        log.info("%s: didn't negotiate compression", addr)
        conn.close()
        return
    try:
        serve_conn(conn, max_message_size)
    except wsio.ProtocolError as err:
        # RFC 6455 §7.1.7: fail the connection with the code that answers the error.
        try:
            wsio.write_frame(conn, wsio.new_close_frame(wsio.close_frame_body(err.close_code)))
        except OSError:
            pass
        log.info("dropped: %r", err)
    except (wsio.WebSocketError, OSError) as err:
        log.info("dropped: %r", err)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8108)
    parser.add_argument("--max-message-size", type=int, default=wsio.DEFAULT_MAX_MESSAGE_SIZE)
    parser.add_argument("--verbose", "-v", action="store_true", help="log every connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    with socket.create_server((args.host, args.port)) as ln:
        host, port = ln.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        server = ThreadedServer(ln, lambda sock, addr: run_conn(sock, addr, args.max_message_size))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            return


if __name__ == "__main__":
    main()
