"""The plain upgrade loop: accept, ``wsio.upgrade``, then echo raw frames.

The twin of gobwas/ws's zero-copy example built on ``ws.Upgrade(conn)``: each accepted
TCP connection is upgraded in place (the request head is peeked and parsed in a pooled
buffer, so bytes the client sent behind it stay in the socket), then every frame is read
header first, its payload read (within the library's frame size limit, in memory that
grows with the bytes that arrive) and unmasked, and written back unmasked. A Close frame
is echoed and ends the connection. No RFC checks beyond the handshake: see
echo_raw_frames.py for the checked version and echo_low_level.py for wsutil. The accept
loop is :class:`wsio.server.ThreadedServer` (it survives running out of descriptors or
threads); the handshake runs in the connection's thread, with a deadline::

    python examples/upgrade_raw.py --port 8105
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import wsio
from wsio.server import ThreadedServer

# The whole opening handshake must end within this many seconds.
UPGRADER = wsio.Upgrader(timeout=10.0)


def handle(conn: socket.socket, address: Any = None) -> None:
    """Upgrade ``conn`` and echo its frames until Close or end of stream."""
    with conn:
        try:
            UPGRADER.upgrade(conn)
        except (wsio.HandshakeError, OSError):
            return  # refused (already answered) or gone
        try:
            while True:
                header = wsio.read_header(conn)
                # Over DEFAULT_MAX_FRAME_SIZE raises PayloadTooBigError before a byte is
                # read; the buffer grows with the bytes that arrive, not as declared.
                payload = wsio.read_payload(conn, header)
                if header.masked and header.mask:
                    wsio.cipher(payload, header.mask, 0)
                # RFC 6455 §5.1: "A server MUST NOT mask any frames that it sends to the
                # client." Reset the flag and write the frame back.
                wsio.write_header(conn, header.replace(masked=False, mask=None))
                conn.sendall(payload)
                if header.opcode == wsio.OpCode.CLOSE:
                    return
        except (wsio.WebSocketError, OSError):
            return


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8105)
    args = parser.parse_args(argv)
    with socket.create_server((args.host, args.port)) as listener:
        host, port = listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        try:
            ThreadedServer(listener, handle).serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
