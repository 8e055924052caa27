"""A wsio.aio connection that has ended leaves no reference cycle behind.

Reference counting then frees it as soon as the application lets go. An object in a
cycle waits for the garbage collector instead. A server that churns connections would
collect the previous few hundred of them every few hundred handshakes, each pass
walking memory that has gone cold. Checked at both levels, server and client, on
asyncio's loop and uvloop, for connections that close normally, handshakes that are
refused, and clients that hang up during the handshake. The peers are websockets and
raw sockets.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve as ws_serve

from wsio import aio

ROUNDS = 5
LOOPS = ["asyncio", "uvloop"]


def _run(main: Callable[[], Awaitable[None]], loop: str) -> None:
    bounded = asyncio.wait_for(main(), 30)
    uvloop.run(bounded) if loop == "uvloop" else asyncio.run(bounded)


def _wsio_garbage(objects: list[Any]) -> list[str]:
    """The types of wsio's objects among ``objects`` (and of the tests' listeners)."""
    names = []
    for obj in objects:
        kind = type(obj)
        if kind.__module__.startswith(("wsio", __name__)):
            names.append(f"{kind.__module__}.{kind.__qualname__}")
    return sorted(set(names))


@pytest.fixture
def cycles() -> Iterator[list[Any]]:
    """What the collector finds unreachable from here on (objects in cycles only)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def _check(cycles: list[Any]) -> None:
    # Called while the server (and the loop) still run: what the collector finds then
    # is what the connections left (a server's own objects are collected once, when it
    # is dropped).
    gc.collect()
    assert _wsio_garbage(cycles) == []


class KeepingEcho(aio.Listener):
    """Keeps its transport, as most listeners do, and echoes every frame."""

    def __init__(self) -> None:
        self.transport: aio.Transport | None = None

    def on_connect(self, transport: aio.Transport) -> None:
        self.transport = transport

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode < 8:
            transport.send(frame.opcode, frame.payload, frame.fin)


class KeepingCollector(aio.Listener):
    """A client listener that keeps its transport and every message."""

    messages = True

    def __init__(self) -> None:
        self.transport: aio.Transport | None = None
        self.received: list[str | bytes] = []
        loop = asyncio.get_running_loop()
        self.answered = loop.create_future()
        self.closed = loop.create_future()

    def on_connect(self, transport: aio.Transport) -> None:
        self.transport = transport

    def on_message(self, transport: aio.Transport, message: str | bytes) -> None:
        self.received.append(message)
        if not self.answered.done():
            self.answered.set_result(None)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result(code)


async def _handshake_cut_short(port: int) -> None:
    # Half a request, then the client hangs up.
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def _refused(port: int) -> None:
    # A request from another origin: 403, and the server closes.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Origin: https://elsewhere.example\r\n\r\n".encode()
    )
    assert (await reader.readline()).startswith(b"HTTP/1.1 403 ")
    await reader.read()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("loop", LOOPS)
def test_callback_server_connections_leave_no_cycles(loop: str, cycles: list[Any]) -> None:
    async def main() -> None:
        server = await aio.create_server(KeepingEcho, "127.0.0.1", 0, origins=[None])
        port = server.sockets[0].getsockname()[1]
        async with server:
            for _ in range(ROUNDS):
                async with ws_connect(f"ws://127.0.0.1:{port}/", origin=None) as ws:
                    await ws.send("ping me back")
                    assert await ws.recv() == "ping me back"
                await _handshake_cut_short(port)
                await _refused(port)
            await asyncio.sleep(0.1)  # the last connection_lost calls
            _check(cycles)

    _run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_callback_client_connections_leave_no_cycles(loop: str, cycles: list[Any]) -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with ws_serve(echo, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            for _ in range(ROUNDS):
                transport, listener = await aio.create_connection(
                    KeepingCollector, f"ws://127.0.0.1:{port}/"
                )
                assert isinstance(listener, KeepingCollector)
                transport.send(1, "hello")
                await listener.answered
                transport.send_close(1000)
                assert await listener.closed == 1000
                assert listener.received == ["hello"]
                del transport, listener
            await asyncio.sleep(0.1)
            _check(cycles)

    _run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_high_level_connections_leave_no_cycles(loop: str, cycles: list[Any]) -> None:
    async def echo(ws: aio.Connection) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with aio.serve(echo, "127.0.0.1", 0, origins=[None]) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}/"
            for _ in range(ROUNDS):
                async with aio.connect(url) as ws:
                    await ws.send(b"\x00" * 300)
                    assert await ws.recv() == b"\x00" * 300
                async with ws_connect(url, origin=None) as peer:
                    await peer.send("hi")
                    assert await peer.recv() == "hi"
                await _handshake_cut_short(port)
                await _refused(port)
            await asyncio.sleep(0.1)
            _check(cycles)

    _run(main, loop)
