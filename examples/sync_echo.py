"""An echo server on wsio.sync: a thread per connection, every message sent back.

Compression (permessage-deflate) is accepted when the client offers it; pings are
answered and sent (keepalive) by the connection itself::

    python examples/sync_echo.py --host 127.0.0.1 --port 8110
"""

from __future__ import annotations

import argparse
import contextlib

from wsio.sync import Connection, serve


def echo(ws: Connection) -> None:
    """Send every message back until the peer closes the connection."""
    for message in ws:
        ws.send(message)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8110)
    parser.add_argument("--no-compression", action="store_true")
    args = parser.parse_args(argv)
    # The Autobahn suite sends messages of exactly 16 MiB: the default limit lets them in.
    with serve(
        echo, args.host, args.port, compression=None if args.no_compression else "deflate"
    ) as server:
        host, port = server.socket.getsockname()[:2]  # the port chosen for --port 0
        print(f"listening on {host}:{port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


if __name__ == "__main__":
    main()
