"""wsio.aio's high level against other implementations, both ways: websockets, aiohttp,
picows (each as server and as client) and Node 20's built-in WebSocket client."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable
from typing import Any

import aiohttp
import picows
import pytest
import websockets.asyncio.client
import websockets.asyncio.server
from aiohttp import web

from wsio import aio
from wsio.exceptions import ConnectionClosedOK

TIMEOUT = 20.0
BIG = "é" * 100_000  # several reads, compressed where the peer agrees


def run(coro: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)

    return asyncio.run(bounded())


async def echo(ws: aio.Connection) -> None:
    async for message in ws:
        await ws.send(message)


async def exchange(ws: aio.Connection) -> None:
    """What every wsio client checks against an echo server."""
    for message in ("hello ✓", b"\x00\xff", BIG, ["frag", "mented"]):
        await ws.send(message)
        expected = "fragmented" if isinstance(message, list) else message
        assert await ws.recv() == expected
    assert await ws.ping() >= 0.0


# -- wsio.aio client, other servers ----------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_client_with_websockets_server(compression: str | None) -> None:
    agreed: list[str | None] = []

    async def peer_echo(ws: Any) -> None:
        agreed.append(ws.response.headers.get("Sec-WebSocket-Extensions"))
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with websockets.asyncio.server.serve(peer_echo, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with aio.connect(f"ws://127.0.0.1:{port}", compression=compression) as ws:
                await exchange(ws)

    run(main())
    # As wsio.sync.connect: the client keeps no compressor context between messages
    # (RFC 7692 §7.1.1.2), so an idle client holds no zlib state.
    if compression:
        assert agreed[0] is not None and "client_no_context_takeover" in agreed[0]
    else:
        assert agreed == [None]


def test_client_with_aiohttp_server() -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with aio.connect(f"ws://127.0.0.1:{port}/") as ws:
                await exchange(ws)
        finally:
            await runner.cleanup()

    run(main())


def test_client_with_picows_server() -> None:
    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type == picows.WSMsgType.PING:
                transport.send_pong(frame.get_payload_as_bytes())
            else:
                transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)

    async def main() -> None:
        srv = await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            async with aio.connect(f"ws://127.0.0.1:{port}/") as ws:
                await exchange(ws)
        finally:
            srv.close()

    run(main())


# -- other clients, wsio.aio server ----------------------------------------------------


async def serving() -> tuple[aio.Server, str]:
    srv = await aio.serve(echo, "127.0.0.1", 0)
    return srv, f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_server_with_websockets_client(compression: str | None) -> None:
    async def main() -> None:
        srv, url = await serving()
        async with websockets.asyncio.client.connect(url, compression=compression) as ws:
            for message in ("hello ✓", b"\x00\xff", BIG):
                await ws.send(message)
                assert await ws.recv() == message
            await ws.send(["frag", "mented"])
            assert await ws.recv() == "fragmented"
        assert ws.close_code == 1000
        await srv.close()

    run(main())


def test_server_with_aiohttp_client() -> None:
    async def main() -> None:
        srv, url = await serving()
        async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=15) as ws:
            await ws.send_str("hello ✓")
            assert await ws.receive_str() == "hello ✓"
            await ws.send_bytes(b"\x00\xff")
            assert await ws.receive_bytes() == b"\x00\xff"
            await ws.send_str(BIG)
            assert await ws.receive_str() == BIG
        await srv.close()

    run(main())


def test_server_with_picows_client() -> None:
    class Client(picows.WSListener):
        def __init__(self) -> None:
            self.got: asyncio.Queue[bytes] = asyncio.Queue()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                self.got.put_nowait(frame.get_payload_as_bytes())

    async def main() -> None:
        srv, url = await serving()
        transport, client = await picows.ws_connect(Client, url)
        assert isinstance(client, Client)
        transport.send(picows.WSMsgType.TEXT, "hello ✓".encode())
        assert await client.got.get() == "hello ✓".encode()
        transport.send(picows.WSMsgType.BINARY, b"\x00" * 70000)
        assert await client.got.get() == b"\x00" * 70000
        transport.send_close(picows.WSCloseCode.OK, b"done")
        await transport.wait_disconnected()
        await srv.close()

    run(main())


async def node_client(script: str, url: str) -> Any:
    """Run ``script`` in Node 20 (its built-in WebSocket, as a browser has) with ``url``
    as its argument; what it prints, as JSON."""
    node = shutil.which("node")
    assert node, "Node 20 is needed for the browser-WebSocket interop tests"
    proc = await asyncio.create_subprocess_exec(
        node,
        "--experimental-websocket",
        "--no-warnings",
        "-e",
        script,
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return json.loads(out)


def test_server_with_node_websocket() -> None:
    script = r"""
    const ws = new WebSocket(process.argv[1]);
    const got = [];
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send("node ✓"); ws.send("y".repeat(70000)); ws.send(new Uint8Array([1, 2, 3]));
    };
    ws.onmessage = (e) => {
      got.push(typeof e.data === "string" ? (e.data.length > 10 ? e.data.length : e.data)
                                          : Array.from(new Uint8Array(e.data)));
      if (got.length === 3) ws.close(1000, "node done");
    };
    ws.onclose = (e) => console.log(JSON.stringify({got, code: e.code, clean: e.wasClean}));
    """
    closes: list[tuple[int | None, str | None]] = []

    async def handler(ws: aio.Connection) -> None:
        try:
            await echo(ws)
        finally:
            await ws.wait_closed()
            closes.append((ws.close_code, ws.close_reason))

    async def main() -> Any:
        async with aio.serve(handler, "127.0.0.1", 0) as srv:
            return await node_client(script, f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}")

    assert run(main()) == {"got": ["node ✓", 70000, [1, 2, 3]], "code": 1000, "clean": True}
    assert closes == [(1000, "node done")]


def test_server_closes_node_websocket_with_its_code() -> None:
    # The server ends the connection: the browser sees the code and reason it chose.
    script = r"""
    const ws = new WebSocket(process.argv[1]);
    const got = [];
    ws.binaryType = "arraybuffer";
    ws.onmessage = (e) => got.push(Array.from(new Uint8Array(e.data)));
    ws.onclose = (e) => console.log(
      JSON.stringify({got, code: e.code, reason: e.reason, clean: e.wasClean}));
    """

    async def handler(ws: aio.Connection) -> None:
        await ws.send(b"\x00\xff")
        await ws.close(4001, "server done ✓")

    async def main() -> Any:
        async with aio.serve(handler, "127.0.0.1", 0) as srv:
            return await node_client(script, f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}")

    assert run(main()) == {
        "got": [[0, 255]],
        "code": 4001,
        "reason": "server done ✓",
        "clean": True,
    }


def test_close_from_a_websockets_server_ends_iteration() -> None:
    async def peer(ws: Any) -> None:
        await ws.send("bye")
        await ws.close(1000, "done")

    async def main() -> None:
        async with websockets.asyncio.server.serve(peer, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            async with aio.connect(f"ws://127.0.0.1:{port}") as ws:
                assert [message async for message in ws] == ["bye"]
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
                assert (ws.close_code, ws.close_reason) == (1000, "done")

    run(main())
