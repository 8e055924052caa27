"""The asyncio echo servers that ``bench.aio_echo`` measures, one per subprocess.

``python -m bench._aio_servers NAME --loop asyncio|uvloop`` listens on 127.0.0.1 (an
unused port, backlog 4096), prints ``listening on 127.0.0.1:PORT`` and echoes every
message until it is terminated. Each server is written the way its library's
documentation shows a fast echo, with that library's default limits left on (listed in
``LIMITS``); compression is whatever the library does by default, so it is used only
when the client offers it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

HOST = "127.0.0.1"
BACKLOG = 4096  # the handshake and idle-connection tests open connections in bursts
IDLE_CONNECTIONS = 20_000  # test 3's 10,000 and then some


# -- the ceiling: a plain asyncio TCP echo ---------------------------------------------


class _TcpEcho(asyncio.Protocol):
    """Writes back every chunk it reads; the bytes object asyncio made for the read is
    immutable, so the transport may keep it (uvloop batches writes) without a copy."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve_tcp(listener: socket.socket) -> None:
    """Bytes in, the same bytes out: what any WebSocket server on this loop can reach."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_TcpEcho, sock=listener)
    await server.serve_forever()


# -- picows: a WSListener called for every frame --------------------------------------


async def serve_picows(listener: socket.socket) -> None:
    """``ws_create_server`` with a listener that sends each frame's payload view back."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    class Echo(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            else:
                transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)

    def factory(request: WSUpgradeRequest) -> WSListener:
        return Echo()

    server = await ws_create_server(factory, sock=listener)
    await server.serve_forever()


# -- websockets: a coroutine per connection, ``async for`` over its messages -----------


async def serve_websockets(listener: socket.socket) -> None:
    """``websockets.asyncio.server.serve``; the handler is ``async for msg in ws: await
    ws.send(msg)``."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: ServerConnection) -> None:
        # A client leaving without a Close (the load tests end so) is no handler
        # failure: without this, websockets logs its traceback.
        with contextlib.suppress(ConnectionClosed):
            async for msg in ws:
                await ws.send(msg)

    async with serve(echo, sock=listener) as server:
        await server.serve_forever()


# -- aiohttp: a WebSocketResponse in a request handler ---------------------------------


async def serve_aiohttp(listener: socket.socket) -> None:
    """``web.WebSocketResponse()`` with its defaults; ``send_bytes``/``send_str`` back."""
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    await asyncio.Event().wait()


# -- wsio.aio, the callback level: a Listener called for every frame -----------------


async def serve_wsio_aio_callback(listener: socket.socket) -> None:
    """``wsio.aio.create_server`` with a Listener that sends each frame's payload view
    back (the same shape as picows' echo above)."""
    from wsio import aio

    class Echo(aio.Listener):
        def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
            if frame.opcode < 8:
                transport.send(frame.opcode, frame.payload, frame.fin)

    server = await aio.create_server(Echo, sock=listener, max_connections=IDLE_CONNECTIONS)
    await server.serve_forever()


#: Server name -> the coroutine that serves on a listening socket until cancelled.
SERVE: dict[str, Callable[[socket.socket], Awaitable[None]]] = {
    "tcp": serve_tcp,
    "picows": serve_picows,
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
    "wsio-aio-callback": serve_wsio_aio_callback,
}

#: The limits each server runs with: every library's defaults (picows 2.3.1,
#: websockets 17.4, aiohttp 3.14.5), none of them turned off.
LIMITS: dict[str, str] = {
    "tcp": "none (no protocol)",
    "picows": "max_frame_size 10 MiB, handshake timeout 5 s, auto-pong on, no UTF-8 "
    "check (picows leaves it to the application), no compression (picows has none); "
    "aiofastnet transport (picows' default when it is installed)",
    "websockets": "max_size 1 MiB, max_queue 16, write_limit 32 KiB, ping_interval 20 s, "
    "ping_timeout 20 s, open_timeout 10 s, close_timeout 10 s, UTF-8 checked, "
    'compression="deflate" (server_max_window_bits 12, memLevel 5)',
    "aiohttp": "max_msg_size 4 MiB, compress=True, autoping, heartbeat off, close "
    "timeout 10 s, UTF-8 checked",
    "wsio-aio-callback": "max_connections raised from 1,000 to 20,000 (test 3), "
    "max_frame_size and max_message_size 16 MiB, max_fragments "
    "131072, handshake "
    "timeout 10 s, close timeout 10 s, auto-pong on, UTF-8 checked, permessage-deflate "
    "accepted (threshold 128 B)",
}


# -- wsio.aio's high level: a Connection per client, ``async for`` / ``await send`` -----


async def serve_wsio_aio(listener: socket.socket) -> None:
    """``wsio.aio.serve``; the handler is ``async for msg in ws: await ws.send(msg)``."""
    from wsio.aio import Connection, serve

    async def echo(ws: Connection) -> None:
        async for msg in ws:
            await ws.send(msg)

    # The one default raised: test 3 holds 10,000 idle connections (the others have no
    # connection limit).
    async with serve(echo, sock=listener, max_connections=IDLE_CONNECTIONS) as server:
        await server.serve_forever()


SERVE["wsio-aio"] = serve_wsio_aio
LIMITS["wsio-aio"] = (
    "max_connections raised from 1,000 to 20,000 (test 3), "
    "max_message_size 16 MiB, max_frame_size 16 MiB, max_queue 16, write_limit 64 KiB, "
    "ping_interval 20 s, ping_timeout 20 s, handshake timeout and close_timeout on, "
    'UTF-8 checked, compression="deflate" with a threshold'
)


def run(name: str, loop: str) -> None:
    """Serve ``name`` on ``loop`` ("asyncio" or "uvloop") until terminated."""
    listener = socket.create_server((HOST, 0), backlog=BACKLOG)
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    main = SERVE[name](listener)
    runner: Any
    if loop == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    try:
        runner(main)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=SERVE)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    run(args.name, args.loop)
