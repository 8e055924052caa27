"""The plain upgrade loop: accept, ``wsio.upgrade``, then echo raw frames.

The twin of gobwas/ws's zero-copy example built on ``ws.Upgrade(conn)``: each accepted
TCP connection is upgraded in place (the request head is peeked and parsed in a pooled
buffer, so bytes the client sent behind it stay in the socket), then every frame is read
header first, its payload read exactly and unmasked, and written back unmasked. A Close
frame is echoed and ends the connection. No RFC checks beyond the handshake: see
echo_raw_frames.py for the checked version and echo_low_level.py for wsutil::

    python examples/upgrade_raw.py --port 8080
"""

from __future__ import annotations

import argparse
import socket
import threading

import wsio


def handle(conn: socket.socket) -> None:
    """Upgrade ``conn`` and echo its frames until Close or end of stream."""
    with conn:
        try:
            wsio.upgrade(conn)
        except (wsio.HandshakeError, OSError):
            return  # refused (already answered) or gone
        try:
            while True:
                header = wsio.read_header(conn)
                payload = bytearray(header.length)
                if wsio.read_exactly_into(conn, memoryview(payload)) < header.length:
                    return
                if header.masked:
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
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    with socket.create_server((args.host, args.port)) as listener:
        host, port = listener.getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        try:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=handle, args=(conn,), daemon=True).start()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
