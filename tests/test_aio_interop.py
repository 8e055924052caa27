"""wsio.aio's callback level against real peers, both ways: websockets, aiohttp, picows,
Node 20's built-in WebSocket; over TLS and Unix sockets; on asyncio's loop and uvloop."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import picows
import pytest
import trustme
import uvloop
import websockets
from aiohttp import web
from websockets.asyncio.server import serve as ws_serve
from websockets.typing import Subprotocol

from wsio import aio

TIMEOUT = 10.0
MESSAGES: list[str | bytes] = [
    "hello",
    "κόσμε ✓" * 2000,  # text over 4 KiB: arrives in pieces, checked as it arrives
    b"\x00\xff" * 3,
    b"",
    bytes(range(256)) * 1200,  # 300 KiB binary
]


def run(coro: Coroutine[Any, Any, Any], loop: str = "asyncio") -> Any:
    """Run ``coro`` on asyncio's default loop or uvloop, with a bound on hangs."""
    bounded = asyncio.wait_for(coro, TIMEOUT * 3)
    return uvloop.run(bounded) if loop == "uvloop" else asyncio.run(bounded)


class FrameEcho(aio.Listener):
    """Echoes frame by frame and records how the connection ended."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode < 8:
            transport.send(frame.opcode, frame.payload, frame.fin)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))


class MessageEcho(FrameEcho):
    """Echoes whole messages (``messages = True``)."""

    messages = True

    def on_message(self, transport: aio.Transport, message: str | bytes) -> None:
        transport.send(1 if isinstance(message, str) else 2, message)


class Collector(aio.Listener):
    """A client listener keeping whole messages in a queue."""

    messages = True

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | bytes] = asyncio.Queue()
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()

    def on_message(self, transport: aio.Transport, message: str | bytes) -> None:
        self.queue.put_nowait(message)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))


# -- clients of a wsio.aio server --------------------------------------------------------


async def _websockets_client(url: str, **kwargs: Any) -> None:
    async with websockets.connect(url, max_size=None, **kwargs) as ws:
        for message in MESSAGES:
            await ws.send(message)
            assert await ws.recv() == message
        await ws.send(["frag", "mented", " ✓"])  # one message in three frames
        assert await ws.recv() == "fragmented ✓"
        await ws.close(4000, "bye")


async def _aiohttp_client(url: str) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        for message in MESSAGES:
            if isinstance(message, str):
                await ws.send_str(message)
            else:
                await ws.send_bytes(message)
            reply = await ws.receive(TIMEOUT)
            assert reply.data == message
        await ws.close(code=4000, message=b"bye")


async def _picows_client(url: str) -> None:
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type in (picows.WSMsgType.TEXT, picows.WSMsgType.BINARY):
                assert frame.fin  # each frame is echoed as one frame, however large
                got.put_nowait(frame.get_payload_as_bytes())

    transport, _ = await picows.ws_connect(Client, url)
    for message in MESSAGES:
        data = message.encode() if isinstance(message, str) else message
        transport.send(picows.WSMsgType.BINARY, data)
        assert await asyncio.wait_for(got.get(), TIMEOUT) == data
    transport.send_close(picows.WSCloseCode(4000), b"bye")
    await asyncio.wait_for(transport.wait_disconnected(), TIMEOUT)
    del loop


CLIENTS: dict[str, Callable[[str], Awaitable[None]]] = {
    "websockets": _websockets_client,
    "aiohttp": _aiohttp_client,
    "picows": _picows_client,
}


@pytest.mark.parametrize("listener", [FrameEcho, MessageEcho], ids=["frames", "messages"])
@pytest.mark.parametrize("peer", list(CLIENTS))
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_server_echoes_for_each_client(peer: str, listener: type[FrameEcho], loop: str) -> None:
    async def main() -> None:
        listeners: list[FrameEcho] = []

        def factory() -> FrameEcho:
            listeners.append(listener())
            return listeners[-1]

        server = await aio.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await CLIENTS[peer](f"ws://127.0.0.1:{port}/")
        # The client's Close reached the listener with its code and reason.
        assert await asyncio.wait_for(listeners[0].closed, TIMEOUT) == (4000, "bye")
        server.close()
        await server.wait_closed()

    run(main(), loop)


# -- a wsio.aio client of other servers --------------------------------------------------


async def _talk(url: str, **options: Any) -> tuple[aio.Transport, Collector]:
    transport, listener = await aio.create_connection(Collector, url, **options)
    assert isinstance(listener, Collector)
    for message in MESSAGES:
        transport.send(1 if isinstance(message, str) else 2, message)
        assert await asyncio.wait_for(listener.queue.get(), TIMEOUT) == message
    # A fragmented message, built by the caller.
    transport.send(1, "frag", fin=False)
    transport.send(0, b"mented", fin=False)
    transport.send(0, " ✓".encode())
    assert await asyncio.wait_for(listener.queue.get(), TIMEOUT) == "fragmented ✓"
    return transport, listener


async def _serve_websockets(run_client: Callable[[str], Awaitable[None]]) -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with ws_serve(echo, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        await run_client(f"ws://127.0.0.1:{port}/")


async def _serve_aiohttp(run_client: Callable[[str], Awaitable[None]]) -> None:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            else:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await run_client(f"ws://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()


async def _serve_picows(run_client: Callable[[str], Awaitable[None]]) -> None:
    class Echo(picows.WSListener):
        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
            elif frame.msg_type != picows.WSMsgType.PONG:
                transport.send(frame.msg_type, frame.get_payload_as_bytes(), frame.fin)

    server = await picows.ws_create_server(lambda request: Echo(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await run_client(f"ws://127.0.0.1:{port}/")
    finally:
        server.close()


SERVERS: dict[str, Callable[[Callable[[str], Awaitable[None]]], Coroutine[Any, Any, None]]] = {
    "websockets": _serve_websockets,
    "aiohttp": _serve_aiohttp,
    "picows": _serve_picows,
}


@pytest.mark.parametrize("peer", list(SERVERS))
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_client_talks_to_each_server(peer: str, loop: str) -> None:
    async def client(url: str) -> None:
        transport, listener = await _talk(url)
        transport.send_ping(b"are you there")
        transport.send_close(1000, "done")
        code, _ = await asyncio.wait_for(listener.closed, TIMEOUT)
        assert code == 1000  # the reason echoed back is each server's choice
        assert transport.closed

    run(SERVERS[peer](client), loop)


def test_client_compression_with_websockets() -> None:
    async def client(url: str) -> None:
        transport, listener = await _talk(url)
        assert [type(e).__name__ for e in transport.extensions] == ["PerMessageDeflate"]
        transport.send_close()
        await asyncio.wait_for(listener.closed, TIMEOUT)

    run(_serve_websockets(client))


def test_server_compression_and_subprotocol_with_websockets() -> None:
    async def main() -> None:
        seen: list[aio.Transport] = []

        class Echo(FrameEcho):
            def on_connect(self, transport: aio.Transport) -> None:
                seen.append(transport)

        server = await aio.create_server(Echo, "127.0.0.1", 0, subprotocols=["chat"])
        port = server.sockets[0].getsockname()[1]
        chat = [Subprotocol("chat")]
        async with websockets.connect(f"ws://127.0.0.1:{port}/", subprotocols=chat) as ws:
            assert ws.subprotocol == "chat"
            await ws.send("x" * 5000)
            assert await ws.recv() == "x" * 5000
        assert seen[0].subprotocol == "chat"
        assert [type(e).__name__ for e in seen[0].extensions] == ["PerMessageDeflate"]
        server.close()

    run(main())


# -- Node 20's built-in WebSocket ------------------------------------------------------

NODE_SCRIPT = r"""
const ws = new WebSocket(process.argv[1]);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => {
  ws.send("from node ✓");
  ws.send(new Uint8Array([1, 2, 3, 250]));
  ws.send("z".repeat(100000));
};
ws.onmessage = (event) => {
  const d = event.data;
  got.push(typeof d === "string"
    ? (d.length > 100 ? "text " + d.length : d)
    : "binary " + Array.from(new Uint8Array(d)).join(","));
  if (got.length === 3) ws.close(4100, "node done");
};
ws.onclose = (event) => {
  console.log(JSON.stringify({got, code: event.code, reason: event.reason, clean: event.wasClean}));
};
"""


@pytest.mark.parametrize("listener", [FrameEcho, MessageEcho], ids=["frames", "messages"])
def test_node_websocket_client(listener: type[FrameEcho]) -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the browser-WebSocket interop test"

    async def main() -> None:
        server = await aio.create_server(listener, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            node,
            "--experimental-websocket",
            "--no-warnings",
            "-e",
            NODE_SCRIPT,
            f"ws://127.0.0.1:{port}/",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT * 2)
        assert json.loads(out) == {
            "got": ["from node ✓", "binary 1,2,3,250", "text 100000"],
            "code": 4100,
            "reason": "",  # the core answers a Close with its code only
            "clean": True,
        }
        server.close()

    run(main())


# -- TLS and Unix sockets ----------------------------------------------------------------


def _tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_both_ways(loop: str) -> None:
    server_ctx, client_ctx = _tls()

    async def main() -> None:
        server = await aio.create_server(FrameEcho, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        url = f"wss://127.0.0.1:{port}/"
        transport, listener = await _talk(url, ssl=client_ctx)
        transport.send_close()
        assert await asyncio.wait_for(listener.closed, TIMEOUT) == (1000, "")
        await _websockets_client(url, ssl=client_ctx)
        # Verification is on: a client that does not trust the CA fails the handshake.
        with pytest.raises(ssl.SSLCertVerificationError):
            await aio.create_connection(Collector, url)
        server.close()

    run(main(), loop)


def test_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "ws.sock")

    async def main() -> None:
        server = await aio.create_server(FrameEcho, path=path)
        transport, listener = await _talk("ws+unix://" + path.replace("/", "%2F") + "/x")
        transport.send_close()
        await asyncio.wait_for(listener.closed, TIMEOUT)
        transport, listener = await _talk("ws://localhost/x", path=path)
        transport.send_close()
        await asyncio.wait_for(listener.closed, TIMEOUT)
        async with websockets.unix_connect(path, "ws://localhost/") as ws:
            await ws.send("over unix")
            assert await ws.recv() == "over unix"
        server.close()

    run(main())


class PieceEcho(FrameEcho):
    """Echoes a large frame piece by piece as it is read (``frame_pieces = True``)."""

    frame_pieces = True


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_frame_pieces_echo_a_large_frame_as_it_arrives(compression: str | None) -> None:
    # A 3 MiB frame of each kind, fed to the listener in pieces as they are read (each
    # shown as a frame: the frame's opcode first, continuations after, fin on the last),
    # echoed as they come: websockets gets back the same messages.
    text = "κόσμε ✓" * (3 * 2**20 // 14)
    binary = bytes(range(256)) * (3 * 2**20 // 256)
    listeners: list[PieceEcho] = []

    def factory() -> PieceEcho:
        listeners.append(PieceEcho())
        return listeners[-1]

    async def main() -> None:
        server = await aio.create_server(factory, "127.0.0.1", 0, max_message_size=None)
        port = server.sockets[0].getsockname()[1]
        async with websockets.connect(
            f"ws://127.0.0.1:{port}", max_size=None, compression=compression
        ) as ws:
            for message in (text, binary, "small"):
                await ws.send(message)
                assert await ws.recv() == message
        await asyncio.wait_for(listeners[0].closed, TIMEOUT)
        server.close()
        await server.wait_closed()

    run(main())
