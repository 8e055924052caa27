"""An echo server on wsio.aio's high level: a task per connection, every message sent back.

Compression (permessage-deflate) is accepted when the client offers it; pings are
answered and sent (keepalive) by the connection itself::

    python examples/aio_echo.py --host 127.0.0.1 --port 8111 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from wsio.aio import Connection, serve


async def echo(ws: Connection) -> None:
    """Send every message back until the peer closes the connection."""
    async for message in ws:
        await ws.send(message)


async def serve_until_cancelled(host: str, port: int, compression: str | None) -> None:
    """Listen on ``host``:``port`` and echo until cancelled."""
    # The Autobahn suite sends messages of exactly 16 MiB: the default limit lets them in.
    async with serve(echo, host, port, compression=compression) as server:
        host, port = server.sockets[0].getsockname()[:2]  # the port chosen for --port 0
        print(f"listening on {host}:{port}", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8111)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args(argv)
    coro = serve_until_cancelled(args.host, args.port, None if args.no_compression else "deflate")
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)


if __name__ == "__main__":
    main()
