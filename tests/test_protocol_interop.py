"""wsio.protocol over real loopback sockets, against websockets and aiohttp as peers.

The driver is compliance/protocol_driver.py's: wsio's handshake, then plain sockets and
nothing but the sans-I/O protocol.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from compliance.protocol_driver import drive, serve_one
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

import wsio
from wsio import wsflate
from wsio.protocol import ClientProtocol, PerMessageDeflate

TIMEOUT = 30.0


@pytest.fixture(params=[False, True], ids=["plain", "deflate"])
def wsio_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """A wsio.protocol echo server on loopback; its ws:// URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            sock.settimeout(TIMEOUT)
            threading.Thread(target=serve_one, args=(sock, request.param), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{port}/"
    listener.close()


MESSAGES: list[str | bytes] = ["hello", "é" * 10_000, b"\x00\xff" * 40_000, b"", "x" * 70_000]


def test_websockets_client_to_wsio_server(wsio_server: str) -> None:
    with ws_connect(wsio_server, open_timeout=TIMEOUT, max_size=None) as ws:
        for message in MESSAGES:
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == message
        ws.send(["frag", "mented"])  # one message in two frames
        assert ws.recv(timeout=TIMEOUT) == "fragmented"
        ws.ping(b"are you there").wait(TIMEOUT)
        ws.close(1000, "done")
    assert ws.close_code == 1000


def test_aiohttp_client_to_wsio_server(wsio_server: str) -> None:
    async def run() -> int | None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                wsio_server, compress=15, timeout=aiohttp.ClientWSTimeout(TIMEOUT)
            ) as ws,
        ):
            for message in MESSAGES:
                if isinstance(message, str):
                    await ws.send_str(message)
                    assert (await ws.receive(TIMEOUT)).data == message
                else:
                    await ws.send_bytes(message)
                    assert (await ws.receive(TIMEOUT)).data == message
            await ws.close()
            return ws.close_code

    assert asyncio.run(run()) == 1000


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_wsio_client_to_websockets_server(deflate: bool) -> None:
    received: list[object] = []

    def handler(ws: object) -> None:
        for message in ws:  # type: ignore[attr-defined]
            received.append(message)
            ws.send(message)  # type: ignore[attr-defined]

    with ws_serve(handler, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        port = server.socket.getsockname()[1]
        url = f"ws://127.0.0.1:{port}/"
        extension = wsflate.Extension() if deflate else None
        # Dialer options, as dial(**options: Any) takes them (not its own `sock`).
        options: dict[str, Any] = (
            {"extensions": [extension.offer()], "accept_extensions": extension.accept_extensions}
            if extension
            else {}
        )
        conn, _ = wsio.dial(url, proxy=None, timeout=TIMEOUT, **options)
        agreed = extension.accepted() if extension else None
        assert (agreed is not None) == deflate
        proto = ClientProtocol(extensions=[PerMessageDeflate(agreed)] if agreed else [])
        conn.settimeout(TIMEOUT)
        echoed: list[object] = []
        for message in MESSAGES:
            if isinstance(message, str):
                proto.send_text(message)
            else:
                proto.send_binary(message)
            for buffer in proto.data_to_send():
                conn.sendall(buffer)
            events: list[object] = []
            while not events:
                data = conn.recv(65536)
                assert data, "the server ended the connection"
                proto.receive_data(data)
                events = list(proto.events_received())
            echoed += [getattr(e, "data", None) for e in events]
        proto.send_close(1000, "bye")
        drive(conn, proto)  # sends the Close, reads the server's, waits for its EOF
        server.shutdown()
    assert echoed == MESSAGES
    assert proto.close_code == 1000
    assert received == MESSAGES
