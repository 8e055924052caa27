"""An echo server on wsio.aio's callback level: every frame is sent back as it arrives.

Each received frame (or piece of a large frame) is a view into the read buffer; sending
it back with the same opcode and FIN echoes every message with no copy on our side.
Pings and the closing handshake are answered by wsio; permessage-deflate is accepted
(``--no-compression`` turns it off)::

    python examples/aio_echo_callback.py --port 8112 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio

from wsio import aio


class Echo(aio.Listener):
    """Sends every data frame back: text stays text, fragments stay fragments."""

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode < 8:
            transport.send(frame.opcode, frame.payload, frame.fin)


async def main(host: str, port: int, compression: bool) -> None:
    """Serve until interrupted."""
    server = await aio.create_server(
        Echo,
        host,
        port,
        compression=compression,
        # Autobahn sends messages of up to 16 MiB (groups 9 and 12).
        max_message_size=64 * 1024 * 1024,
        max_frame_size=64 * 1024 * 1024,
    )
    host, port = server.sockets[0].getsockname()[:2]  # the port chosen for --port 0
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8112)
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = parser.parse_args()
    run = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run
    try:
        run(main(args.host, args.port, not args.no_compression))
    except KeyboardInterrupt:
        pass
