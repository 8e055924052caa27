"""An Upgrader with an ``on_header`` hook that logs every non-WebSocket header.

The twin of gobwas/ws's ``ws.Upgrader{OnHeader: ...}`` example. The hook gets the name
(canonicalised, e.g. ``Cookie``) and value as memoryviews into the read buffer, valid
only until it returns: it copies what it prints. After the upgrade the connection
echoes frames until Close::

    python examples/upgrade_on_header.py --port 8107
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import wsio
from wsio.server import ThreadedServer


def log_header(key: memoryview | bytes, value: memoryview | bytes) -> None:
    """Print one header; the views are copied here because they die when we return."""
    print(f"non-websocket header: {bytes(key)!r}={bytes(value)!r}", flush=True)


UPGRADER = wsio.Upgrader(on_header=log_header, timeout=10.0)


def handle(conn: socket.socket, address: Any = None) -> None:
    """Upgrade ``conn`` with the logging Upgrader, then echo frames until Close."""
    with conn:
        try:
            UPGRADER.upgrade(conn)
        except (wsio.HandshakeError, OSError) as err:
            print(f"upgrade error: {err}", flush=True)
            return
        try:
            while True:
                frame = wsio.unmask_frame_in_place(wsio.read_frame(conn))
                wsio.write_frame(conn, frame)
                if frame.header.opcode == wsio.OpCode.CLOSE:
                    return
        except (wsio.WebSocketError, OSError):
            return


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted; print the address once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8107)
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
