"""wsio.aio's callback level bounds a send that makes no progress: a peer that never
reads is dropped ``write_timeout`` seconds after asyncio's write buffer went over its
high-water mark (1006 to ``on_close``), and a peer that reads slowly is not."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Coroutine
from typing import Any

from wsio import aio

HANG = 30.0  # a bound on a hang, never on how fast anything is


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, HANG))


class Flooder(aio.Listener):
    """Sends 64 KiB frames until asyncio's buffer passes its high-water mark, then waits
    for ``resume_writing`` (a well-behaved producer)."""

    def __init__(self, write_timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[tuple[int, str]] = loop.create_future()
        self.write_timeout = write_timeout
        self.transport: aio.Transport | None = None
        self.paused = 0
        self.resumed = 0

    def on_connect(self, transport: aio.Transport) -> None:
        transport.write_timeout = self.write_timeout
        self.transport = transport
        self.flood()

    def flood(self) -> None:
        transport = self.transport
        assert transport is not None
        while self.paused == self.resumed and not transport.closed:
            transport.send(2, b"x" * 65536)

    def pause_writing(self) -> None:
        self.paused += 1

    def resume_writing(self) -> None:
        self.resumed += 1
        asyncio.get_running_loop().call_soon(self.flood)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))


def _client(port: int, rcvbuf: int = 4096) -> socket.socket:
    """A blocking socket that upgrades and then reads only when told (its receive buffer
    small by default, so that what the server sends stays in the server)."""
    raw = socket.create_connection(("127.0.0.1", port))
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return raw


async def _serve(write_timeout: float | None) -> tuple[Any, int, list[Flooder]]:
    listeners: list[Flooder] = []

    def factory() -> Flooder:
        listeners.append(Flooder(write_timeout))
        return listeners[-1]

    server = await aio.create_server(factory, "127.0.0.1", 0, compression=False)
    return server, server.sockets[0].getsockname()[1], listeners


def test_a_peer_that_never_reads_is_dropped_after_write_timeout() -> None:
    async def main() -> None:
        server, port, listeners = await _serve(0.2)
        raw = _client(port)
        code, _ = await listeners_closed(listeners)
        assert code == 1006
        assert listeners[0].paused == 1 and listeners[0].resumed == 0
        transport = listeners[0].transport
        assert transport is not None and transport.closed
        raw.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_a_peer_that_reads_is_timed_per_pause() -> None:
    # Each pause is followed by a resume once the peer has read enough, which stops the
    # clock; the pause after the peer stopped reading starts it again.
    async def main() -> None:
        server, port, listeners = await _serve(2.0)  # ample for a loopback reader
        raw = _client(port, rcvbuf=0)
        raw.setblocking(False)
        loop = asyncio.get_running_loop()
        while not listeners or listeners[0].resumed < 3:
            assert await loop.sock_recv(raw, 1 << 20), listeners[0].closed.result()
        assert not listeners[0].closed.done()
        code, _ = await listeners_closed(listeners)  # reads no more from here
        assert code == 1006
        assert listeners[0].paused == listeners[0].resumed + 1 >= 4
        raw.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_write_timeout_none_leaves_a_stuck_peer_connected() -> None:
    async def main() -> None:
        server, port, listeners = await _serve(None)
        raw = _client(port)
        while not listeners or not listeners[0].paused:
            await asyncio.sleep(0.01)
        transport = listeners[0].transport
        assert transport is not None
        # Longer than the other tests' write_timeout; nothing drops it.
        await asyncio.sleep(0.5)
        assert not listeners[0].closed.done() and not transport.closed
        transport.abort()
        assert await listeners_closed(listeners) == (1006, "")
        raw.close()
        server.close()
        await server.wait_closed()

    run(main())


async def listeners_closed(listeners: list[Flooder]) -> tuple[int, str]:
    """The first connection's on_close arguments, once it has one."""
    while not listeners:
        await asyncio.sleep(0.01)
    return await listeners[0].closed
