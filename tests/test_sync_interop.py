"""wsio.sync against real peers, both ways: websockets (sync and asyncio),
websocket-client, and Node 20's built-in WebSocket client; loopback only."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websocket
import websockets.asyncio.client
import websockets.asyncio.server
import websockets.sync.client
import websockets.sync.server
from websockets.typing import Origin, Subprotocol

import wsio
from wsio.sync import Connection, connect, serve

TIMEOUT = 10.0
BIG = bytes(range(256)) * 4096  # 1 MiB, compressible


def echo(ws: Connection) -> None:
    for message in ws:
        ws.send(message)


@contextmanager
def wsio_server(handler: Callable[[Connection], object] = echo, **options: Any) -> Iterator[str]:
    """A wsio.sync server on 127.0.0.1 in a thread; yields its URL."""
    server = serve(handler, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(TIMEOUT)
        assert not thread.is_alive()


@contextmanager
def websockets_sync_server(**options: Any) -> Iterator[str]:
    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with websockets.sync.server.serve(handler, "127.0.0.1", 0, **options) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


@contextmanager
def websockets_asyncio_server() -> Iterator[str]:
    """A websockets asyncio echo server on its own loop in a thread."""
    ready: list[str] = []
    started = threading.Event()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def handler(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with websockets.asyncio.server.serve(handler, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            ready.append(f"ws://127.0.0.1:{port}")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    started.wait(TIMEOUT)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(TIMEOUT)
        loop.close()


def exchange(ws: Connection) -> None:
    """Text, binary, fragmented, large and compressible messages, a ping, through an echo."""
    ws.send("héllo ✓")
    assert ws.recv(TIMEOUT) == "héllo ✓"
    ws.send(b"\x00\xff" * 10)
    assert ws.recv(TIMEOUT) == b"\x00\xff" * 10
    ws.send(["frag", "ment", "ed"])
    assert ws.recv(TIMEOUT) == "fragmented"
    ws.send(iter([b"a", bytearray(b"b"), memoryview(b"c")]))
    assert ws.recv(TIMEOUT) == b"abc"
    ws.send(BIG)
    assert ws.recv(TIMEOUT) == BIG
    ws.send("x" * 70000)
    assert ws.recv(TIMEOUT, decode=False) == b"x" * 70000
    assert ws.ping().wait(TIMEOUT) >= 0.0
    assert ws.latency > 0.0


# -- wsio.sync client -----------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_client_with_websockets_sync_server(compression: str | None) -> None:
    with websockets_sync_server() as url, connect(url, compression=compression) as ws:
        assert bool(ws.protocol.extensions) == (compression == "deflate")
        exchange(ws)
    assert ws.close_code == 1000
    assert ws.close_reason == ""


def test_client_with_websockets_asyncio_server() -> None:
    with websockets_asyncio_server() as url, connect(url) as ws:
        assert ws.protocol.extensions  # permessage-deflate agreed
        exchange(ws)
        ws.close(4000, "bye")
    assert ws.close_code == 4000
    assert ws.close_reason == "bye"


def test_client_sees_server_close_code() -> None:
    def handler(ws: Any) -> None:
        ws.recv()
        ws.close(1001, "going")

    with websockets.sync.server.serve(handler, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}") as ws:
                ws.send("hi")
                with pytest.raises(wsio.ConnectionClosedOK) as info:
                    ws.recv(TIMEOUT)
                assert (info.value.code, info.value.reason) == (1001, "going")
                # Iteration ends quietly after a normal close.
                assert list(ws) == []
        finally:
            server.shutdown()
            thread.join(TIMEOUT)


# -- wsio.sync server -----------------------------------------------------------------


@pytest.mark.parametrize("compression", ["deflate", None])
def test_server_with_websockets_sync_client(compression: str | None) -> None:
    with wsio_server(compression=compression) as url:
        with websockets.sync.client.connect(url) as ws:
            assert ws.response is not None
            assert (ws.response.headers.get("Sec-WebSocket-Extensions") is not None) == (
                compression == "deflate"
            )
            messages: list[str | bytes] = ["héllo", b"\x01\x02", BIG, "y" * 100000]
            for message in messages:
                ws.send(message)
                assert ws.recv(TIMEOUT) == message
            ws.send(["a", "b"])
            assert ws.recv(TIMEOUT) == "ab"
            ws.ping().wait(TIMEOUT)
        assert ws.close_code == 1000


def test_server_with_websockets_asyncio_client() -> None:
    async def run(url: str) -> list[Any]:
        async with websockets.asyncio.client.connect(url) as ws:
            got = []
            messages: list[str | bytes] = ["text", b"bin", BIG]
            for message in messages:
                await ws.send(message)
                got.append(await ws.recv())
            await ws.close(4001, "done")
            return got

    with wsio_server() as url:
        assert asyncio.run(run(url)) == ["text", b"bin", BIG]


def test_server_request_subprotocol_and_headers() -> None:
    seen: list[Any] = []

    def handler(ws: Connection) -> None:
        assert ws.request is not None
        seen.append((ws.request.path, ws.request.header("X-Token"), ws.subprotocol))
        seen.append((ws.local_address[0], ws.remote_address[0]))
        ws.send("ok")

    with (
        wsio_server(handler, protocol=["chat"]) as url,
        websockets.sync.client.connect(
            url + "/room?x=1",
            subprotocols=[Subprotocol("chat")],
            additional_headers={"X-Token": "t"},
        ) as ws,
    ):
        assert ws.recv(TIMEOUT) == "ok"
        assert ws.subprotocol == "chat"
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            ws.recv(TIMEOUT)
    assert seen == [("/room?x=1", "t", "chat"), ("127.0.0.1", "127.0.0.1")]


def test_server_with_websocket_client() -> None:
    with wsio_server() as url:
        ws = websocket.create_connection(url, timeout=TIMEOUT)
        try:
            ws.send("héllo")
            assert ws.recv() == "héllo"
            ws.send_binary(b"\x00" * 70000)
            assert ws.recv() == b"\x00" * 70000
            ws.ping(b"p")
            ws.send("after ping")
            assert ws.recv() == "after ping"
        finally:
            ws.close()


def test_server_origins_refuses_foreign_browser_pages() -> None:
    with wsio_server(origins=["https://app.example"]) as url:
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            websockets.sync.client.connect(url, origin=Origin("https://evil.example"))
        assert info.value.response.status_code == 403
        with websockets.sync.client.connect(url, origin=Origin("https://app.example")) as ws:
            ws.send("ok")
            assert ws.recv(TIMEOUT) == "ok"


def test_server_with_node_websocket() -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the browser-WebSocket interop tests"
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
    with wsio_server() as url:
        result = subprocess.run(
            [node, "--experimental-websocket", "--no-warnings", "-e", script, url],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=True,
        )
    assert json.loads(result.stdout) == {
        "got": ["node ✓", 70000, [1, 2, 3]],
        "code": 1000,
        "clean": True,
    }


def test_server_shutdown_says_going_away_to_websockets() -> None:
    server = serve(echo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    with websockets.sync.client.connect(url) as ws:
        ws.send("x")
        assert ws.recv(TIMEOUT) == "x"
        server.shutdown()
        with pytest.raises(websockets.exceptions.ConnectionClosedOK):
            ws.recv(TIMEOUT)
    assert ws.close_code == 1001
    thread.join(TIMEOUT)
    assert not thread.is_alive()
