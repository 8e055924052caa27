"""wsio.aio's high level: Connection, connect, serve and broadcast, wsio on both ends
and against hostile peers (silent, never reading, never finishing the handshake)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import gc
import hashlib
import logging
import os
import socket
import ssl
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from wsio import aio
from wsio._connection import PingTracker
from wsio.dialer import Dialer
from wsio.exceptions import (
    ConcurrencyError,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    HandshakeTimeoutError,
    InvalidStatusError,
    MalformedResponseError,
    ProxyError,
)
from wsio.wsflate import Parameters

TIMEOUT = 20.0


def run(coro: Awaitable[Any]) -> Any:
    """Run a test's coroutine with a generous bound on hangs."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, TIMEOUT)

    return asyncio.run(bounded())


async def echo(ws: aio.Connection) -> None:
    async for message in ws:
        await ws.send(message)


@contextlib.asynccontextmanager
async def server(
    handler: Callable[[aio.Connection], Awaitable[object]] = echo, **options: Any
) -> AsyncIterator[tuple[aio.Server, str]]:
    async with aio.serve(handler, "127.0.0.1", 0, **options) as srv:
        port = srv.sockets[0].getsockname()[1]
        yield srv, f"ws://127.0.0.1:{port}"


def test_messages_both_ways_of_every_kind() -> None:
    async def main() -> None:
        async with server() as (_, url), aio.connect(url + "/chat?x=1") as ws:
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"
            await ws.send(bytearray(b"ab"))
            assert await ws.recv(decode=True) == "ab"
            await ws.send("text")
            assert await ws.recv(decode=False) == b"text"
            await ws.send(["frag", "mented ✓"])  # one message in two frames
            assert await ws.recv() == "fragmented ✓"

            async def pieces() -> AsyncIterator[bytes]:
                for piece in (b"a", b"b", b"c"):
                    yield piece

            await ws.send(pieces())
            assert await ws.recv() == b"abc"
            big = bytes(range(256)) * 8192  # 2 MiB: many reads, compressed
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send("streamed")
            assert [piece async for piece in ws.recv_streaming()] == ["streamed"]

    run(main())


def test_request_subprotocol_addresses_and_close_codes() -> None:
    seen: dict[str, Any] = {}

    async def handler(ws: aio.Connection) -> None:
        assert ws.request is not None
        seen["path"] = ws.request.path
        seen["token"] = ws.request.header("x-token")
        seen["subprotocol"] = ws.subprotocol
        seen["remote"] = ws.remote_address
        await ws.send("hi")
        await ws.close(4000, "bye")
        seen["close"] = (ws.close_code, ws.close_reason)

    async def main() -> None:
        async with server(handler, subprotocols=["chat", "superchat"]) as (_, url):
            ws = await aio.connect(
                url + "/room?id=7", subprotocols=["superchat"], headers={"X-Token": "t1"}
            )
            assert ws.subprotocol == "superchat"
            assert ws.local_address == seen.get("remote", ws.local_address)
            assert await ws.recv() == "hi"
            with pytest.raises(ConnectionClosedError):  # 4000: not a normal closure
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4000, "bye")
            await ws.wait_closed()
        assert seen["path"] == "/room?id=7"
        assert seen["token"] == "t1"
        assert seen["subprotocol"] == "superchat"
        assert seen["close"] == (4000, "")  # the peer's answer: the code echoed, RFC 6455 §5.5.1

    run(main())


def test_a_message_queued_before_the_close_is_still_delivered() -> None:
    async def handler(ws: aio.Connection) -> None:
        await ws.send("last words")

    async def main() -> None:
        async with server(handler) as (_, url), aio.connect(url) as ws:
            await ws.wait_closed()
            assert await ws.recv() == "last words"
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    run(main())


def test_ping_gives_the_latency_and_pong_is_allowed() -> None:
    async def main() -> None:
        async with server() as (_, url), aio.connect(url) as ws:
            latency = await ws.ping()
            assert latency >= 0.0
            assert ws.latency == latency
            await ws.ping("custom")
            ws.pong(b"unsolicited")
            await ws.send("still fine")
            assert await ws.recv() == "still fine"

    run(main())


def test_second_concurrent_reader_gets_concurrency_error() -> None:
    async def main() -> None:
        async with server() as (_, url), aio.connect(url) as ws:
            first = asyncio.ensure_future(ws.recv())
            await asyncio.sleep(0)
            with pytest.raises(ConcurrencyError):
                await ws.recv()
            await ws.send("x")
            assert await first == "x"

    run(main())


def test_handler_error_closes_with_1011() -> None:
    async def handler(ws: aio.Connection) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        async with server(handler) as (_, url), aio.connect(url) as ws:
            with pytest.raises(ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1011

    logging.getLogger("wsio").disabled = True
    try:
        run(main())
    finally:
        logging.getLogger("wsio").disabled = False


def test_server_close_says_going_away_and_waits() -> None:
    async def main() -> None:
        async with server() as (srv, url):
            clients = [await aio.connect(url) for _ in range(3)]
            await srv.close()
            for ws in clients:
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
                assert ws.close_code == 1001

    run(main())


def test_origins_refuses_a_foreign_page_with_403() -> None:
    async def main() -> None:
        async with server(origins=["https://app.example"]) as (_, url):
            with pytest.raises(InvalidStatusError) as info:
                await aio.connect(url, headers={"Origin": "https://evil.example"})
            assert info.value.status == 403
            async with aio.connect(url, headers={"Origin": "https://app.example"}) as ws:
                await ws.send("ok")
                assert await ws.recv() == "ok"

    run(main())


# -- hostile peers ---------------------------------------------------------------------


async def switching_protocols(reader: asyncio.StreamReader) -> bytes:
    """Read a client's opening handshake; the 101 that accepts it (RFC 6455 §4.2.2),
    computed here by hand rather than by the code under test."""
    head = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )


@contextlib.asynccontextmanager
async def silent_peer() -> AsyncIterator[str]:
    """A server that completes the opening handshake, then never reads or writes."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader))
        held.append(writer)

    srv = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.transport.abort()
        srv.close()
        await srv.wait_closed()


def test_keepalive_fails_a_silent_peer_with_1011() -> None:
    async def main() -> None:
        async with silent_peer() as url:
            ws = await aio.connect(url, ping_interval=0.1, ping_timeout=0.2, close_timeout=0.2)
            with pytest.raises(ConnectionClosedError) as info:
                await ws.recv()
            assert info.value.sent_code == 1011
            assert ws.close_code == 1006

    run(main())


def test_close_timeout_ends_a_close_the_peer_never_answers() -> None:
    async def main() -> None:
        async with silent_peer() as url:
            ws = await aio.connect(url, close_timeout=0.2)
            await ws.close()
            assert ws.close_code == 1006
            with pytest.raises(ConnectionClosedError):
                await ws.send("too late")

    run(main())


def test_slow_reader_holds_the_sender_at_write_limit() -> None:
    """A client that never reads (max_queue=1 pauses its reading) makes the server's
    sends wait: asyncio's buffer stays within write_limit plus one message."""
    chunk = b"x" * 65536
    sent = 0
    largest = 0

    async def flood(ws: aio.Connection) -> None:
        nonlocal sent, largest
        for _ in range(1000):  # 64 MB: more than any kernel buffers hold
            await ws.send(chunk)
            sent += 1
            largest = max(largest, ws.transport.get_write_buffer_size())

    async def main() -> None:
        async with server(flood, write_limit=131072, compression=None) as (srv, url):
            ws = await aio.connect(url, max_queue=1, compression=None)
            await asyncio.sleep(1.0)
            assert sent < 1000, "the server sent everything to a client that does not read"
            assert largest <= 131072 + len(chunk)
            ws.transport.abort()
            await srv.close()

    run(main())


def test_handshake_that_never_finishes_is_dropped() -> None:
    async def main() -> None:
        async with server(handshake_timeout=0.2) as (_, url):
            port = int(url.rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
            assert await reader.read() == b""
            writer.close()

    run(main())


def test_async_for_over_connect_reconnects_with_backoff() -> None:
    async def one_message(ws: aio.Connection) -> None:
        await ws.send("hello")

    async def main() -> None:
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there yet: the first attempts fail
        started: list[aio.Server] = []

        async def start_later() -> None:
            await asyncio.sleep(0.3)
            started.append(await aio.serve(one_message, "127.0.0.1", port))

        starter = asyncio.ensure_future(start_later())
        got = []
        backoff = aio.Backoff(initial=0.05, maximum=0.2, jitter=0.0)
        async for ws in aio.connect(f"ws://127.0.0.1:{port}", backoff=backoff):
            got.append(await ws.recv())
            if len(got) == 2:
                break
        await starter
        await started[0].close()
        assert got == ["hello", "hello"]

    run(main())


def test_broadcast_reaches_everyone_once_encoded() -> None:
    connected: list[aio.Connection] = []

    async def hold(ws: aio.Connection) -> None:
        connected.append(ws)
        await ws.wait_closed()

    async def main() -> None:
        async with server(hold) as (_, url):
            clients = [
                await aio.connect(url),
                await aio.connect(url, compression=None),
                await aio.connect(url),
            ]
            while len(connected) < 3:
                await asyncio.sleep(0.01)
            aio.broadcast(connected, "news")
            aio.broadcast(connected, b"z" * 10000)  # over the compression threshold
            for ws in clients:
                assert await ws.recv() == "news"
                assert await ws.recv() == b"z" * 10000
                await ws.close()

    run(main())


def test_uvloop() -> None:
    import uvloop

    async def main() -> None:
        async with server() as (_, url), aio.connect(url) as ws:
            await ws.send("on uvloop")
            assert await ws.recv() == "on uvloop"

    uvloop.run(main())


async def raw_upgrade(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw TCP client that has done the opening handshake with the server at ``url``."""
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    return reader, writer


def test_message_before_a_bad_frame_is_answered_before_the_close() -> None:
    # RFC 6455 §5.5.1: data owed before a Close may still be sent. A message and a bad
    # frame (RSV2 set, no extension) in one write: the handler's echo of the message
    # goes out, then the Close 1002 (Autobahn 3.2 grades the reverse NON-STRICT).
    async def main() -> None:
        async with server(compression=None) as (_, url):
            reader, writer = await raw_upgrade(url)
            zero_mask = b"\0\0\0\0"
            writer.write(b"\x81\x82" + zero_mask + b"hi" + b"\xa1\x82" + zero_mask + b"no")
            assert await reader.readexactly(4) == b"\x81\x02hi"
            first, length = await reader.readexactly(2)  # then the Close 1002...
            assert first == 0x88
            assert (await reader.readexactly(length))[:2] == (1002).to_bytes(2, "big")
            assert await reader.read() == b""  # ...and the server ends the connection
            writer.close()

    run(main())


def test_answers_to_messages_read_together_arrive_in_order_even_if_the_handler_stalls() -> None:
    # Messages read together are answered in one write (Connection.send defers while more
    # are queued): in order, and the loop's next turn writes what is deferred even when
    # the handler then waits on something else instead of answering the rest.
    stall = asyncio.Event()

    async def answer_then_stall(ws: aio.Connection) -> None:
        async for message in ws:
            await ws.send(message.upper())
            if message == "b":  # "c" is queued: this answer was deferred
                await stall.wait()

    async def main() -> None:
        async with server(answer_then_stall, compression=None) as (_, url):
            reader, writer = await raw_upgrade(url)
            zero_mask = b"\0\0\0\0"
            writer.write(b"".join(b"\x81\x81" + zero_mask + c for c in (b"a", b"b", b"c")))
            assert await reader.readexactly(6) == b"\x81\x01A\x81\x01B"
            stall.set()
            assert await reader.readexactly(3) == b"\x81\x01C"
            writer.close()

    run(main())


async def echo_until_failed(listener: asyncio.Server) -> None:
    """Connect to a raw server, echo its messages until it makes the client fail."""
    port = listener.sockets[0].getsockname()[1]
    with pytest.raises(ConnectionClosedError):
        async with aio.connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            async for message in ws:
                await ws.send(message)


def test_client_answers_a_message_that_came_with_the_101_before_failing() -> None:
    # The same, client side, where it is hardest: the message and the bad frame arrive
    # in the read that carries the 101, before connect() has returned the Connection.
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader) + b"\x81\x02hi" + b"\xa1\x02no")
        frames.append(await reader.readexactly(2 + 4 + 2))  # the echo, masked
        frames.append((await reader.readexactly(2))[:1])
        writer.close()

    frames: list[bytes] = []

    async def main() -> None:
        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        await echo_until_failed(listener)
        listener.close()

    run(main())
    echo, close = frames
    assert echo[:2] == b"\x81\x82"  # text "hi" came back first...
    assert bytes(b ^ echo[2 + i % 4] for i, b in enumerate(echo[6:])) == b"hi"
    assert close == b"\x88"  # ...then the Close


def test_request_and_response_are_the_handshake_that_happened() -> None:
    served: list[aio.Response | None] = []

    async def handler(ws: aio.Connection) -> None:
        served.append(ws.response)

    async def main() -> None:
        options = {"header": {"X-Served-By": "wsio"}, "subprotocols": ["chat"]}
        async with server(handler, **options) as (_, url):
            port = url.rsplit(":", 1)[1]
            async with aio.connect(
                url + "/feed?x=1", headers={"X-Token": "t1"}, subprotocols=["chat"]
            ) as ws:
                assert ws.request is not None and ws.response is not None
                assert ws.request.path == "/feed?x=1"
                # Every header line the client wrote, its own ones included, in order.
                names = [name.lower() for name, _ in ws.request.headers]
                assert names[:2] == ["host", "upgrade"]
                assert ws.request.header("host") == f"127.0.0.1:{port}"
                assert ws.request.header("sec-websocket-protocol") == "chat"
                assert ws.request.header("X-TOKEN") == "t1"
                key = ws.request.header("sec-websocket-key")
                assert key is not None and len(key) == 24
                assert ws.response.status == 101
                assert ws.response.header("x-served-by") == "wsio"
                assert ws.response.header("sec-websocket-accept") is None  # the handshake's
        # The server's side: the 101 it wrote, the same headers.
        assert served == [aio.Response(101, [("X-Served-By", "wsio")])]

    run(main())


def test_server_request_is_host_and_the_hooks_headers_and_a_bare_101_has_none() -> None:
    """The server keeps the raw request head and parses it when asked: Host, then the
    headers the Upgrader hooks see (names canonicalised, Origin among them), not the
    handshake's own; a 101 with only the handshake's headers is an empty Response."""
    seen: list[tuple[aio.Request | None, aio.Response | None]] = []

    async def handler(ws: aio.Connection) -> None:
        seen.append((ws.request, ws.response))

    async def main() -> None:
        async with server(handler, subprotocols=["chat"]) as (_, url):
            headers = {"x-TOKEN": "t1", "Origin": "https://a.example"}
            async with aio.connect(url + "/p?q=1", headers=headers, subprotocols=["chat"]) as ws:
                assert ws.subprotocol == "chat"
                assert ws.transport.extensions  # permessage-deflate: one more header line
                await ws.wait_closed()
        port = url.rsplit(":", 1)[1]
        assert seen == [
            (
                aio.Request(
                    "/p?q=1",
                    [
                        ("Host", f"127.0.0.1:{port}"),
                        ("X-Token", "t1"),
                        ("Origin", "https://a.example"),
                    ],
                ),
                aio.Response(101, []),
            )
        ]

    run(main())


def test_a_closed_connection_is_not_held_by_its_keepalive_timer() -> None:
    """Keepalive deadlines share timers (buckets of connections): a connection that ends
    leaves its bucket at once, so a server churning connections holds none of them
    until their next ping would have been due."""
    ended: list[weakref.ref[aio.Connection]] = []

    async def handler(ws: aio.Connection) -> None:
        ended.append(weakref.ref(ws))

    async def main() -> None:
        async with server(handler, ping_interval=60) as (_, url):
            for _ in range(3):
                async with aio.connect(url, ping_interval=60) as ws:
                    await ws.wait_closed()
            await asyncio.sleep(0.05)
            gc.collect()
            assert len(ended) == 3
            assert [ref() for ref in ended] == [None, None, None]

    run(main())


def test_ping_bookkeeping_is_each_connections_own() -> None:
    """Trackers with no ping waiting share one empty table (an idle connection holds
    none), and go back to it once every ping is answered: never one another's pings."""
    a = PingTracker(None, None, 0.0)
    b = PingTracker(None, None, 0.0)
    a.sent(b"p", 1.0, "a")
    assert b.pong(b"p", 2.0) == []
    assert b.waiters() == []
    assert a.pong(b"p", 2.0) == [("a", 1.0)]
    assert a.pong(b"p", 3.0) == []  # answered already
    a.sent(b"p", 4.0, "again")
    b.sent(b"p", 4.0, "b")  # not "already waiting": a's ping is not b's
    assert a.waiters() == ["again"]
    assert b.waiters() == ["b"]


def test_connections_that_agree_alike_share_one_deflate_extension() -> None:
    """The server keeps one PerMessageDeflate per agreement (each connection binds its
    own codec): two clients asking alike share it, one asking otherwise gets its own,
    and each one's compressed messages come back whole."""
    connected: list[aio.Connection] = []

    async def hold(ws: aio.Connection) -> None:
        connected.append(ws)
        async for message in ws:
            await ws.send(message)

    class Echoes(aio.Listener):
        messages = True

        def __init__(self) -> None:
            self.got: asyncio.Queue[str | bytes] = asyncio.Queue()

        def on_message(self, transport: aio.Transport, message: str | bytes) -> None:
            self.got.put_nowait(message)

    async def main() -> None:
        small = Parameters(client_no_context_takeover=True, server_max_window_bits=9)
        offers = [Parameters(client_no_context_takeover=True)] * 2 + [small]
        async with server(hold) as (_, url):
            clients = []
            for offer in offers:
                transport, listener = await aio.create_connection(Echoes, url, compression=offer)
                assert isinstance(listener, Echoes)
                clients.append((listener, transport))
            for listener, transport in clients:
                text = "compressible " * 200
                transport.send(1, text)
                assert await listener.got.get() == text
                transport.send_close(1000)
            while len(connected) < 3:
                await asyncio.sleep(0.01)
            first, second, third = (ws.transport.extensions for ws in connected)
            assert first and first is second
            assert third and third[0] is not first[0]
            assert third[0].parameters.server_max_window_bits == 9

    run(main())


def test_keepalive_pings_on_time_on_a_shared_timer() -> None:
    """Connections opened together wait in one keepalive bucket; each still pings
    within 1/16 of its interval after it is due, and a ping answered moves it on."""

    async def main() -> None:
        async with server(ping_interval=None) as (_, url):
            clients = [await aio.connect(url, ping_interval=0.2) for _ in range(3)]
            await asyncio.sleep(0.7)  # three intervals: each client pinged, got its pong
            for ws in clients:
                assert 0 < ws.latency < 0.2
                await ws.close()

    run(main())


@contextlib.asynccontextmanager
async def connect_proxy(*refusals: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP CONNECT proxy on loopback (RFC 9110 §9.3.6): it refuses the first
    requests with ``refusals``, one each, then tunnels to the host and port a request
    names; yields its URL and the request heads it got."""
    heads: list[bytes] = []
    answers = list(refusals)
    # Every stream the proxy opened, closed when it stops: a tunnel still piping when
    # the test's loop ends would otherwise leave its transports to the garbage
    # collector (a ResourceWarning blamed on whichever later test runs then).
    writers: list[asyncio.StreamWriter] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.close()

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if answers:
            writer.write(answers.pop(0))
            writer.close()
            return
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writers.append(up_writer)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    proxy = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    try:
        yield f"http://user:pw@127.0.0.1:{proxy.sockets[0].getsockname()[1]}", heads
    finally:
        proxy.close()
        for writer in writers:
            writer.close()
        await proxy.wait_closed()


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_client_through_an_http_connect_proxy(secure: bool) -> None:
    tls: dict[str, Any] = {}
    client_tls: dict[str, Any] = {}
    if secure:  # TLS inside the tunnel, verified against the target's name
        ca = trustme.CA()
        tls["ssl"] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(tls["ssl"])
        client_tls["ssl"] = ssl.create_default_context()
        ca.configure_trust(client_tls["ssl"])

    async def main() -> None:
        async with server(**tls) as (_, url), connect_proxy() as (proxy, heads):
            target = url.removeprefix("ws://")
            if secure:
                url = "wss://" + target
            async with aio.connect(url + "/via", proxy=proxy, **client_tls) as ws:
                await ws.send("through the tunnel")
                assert await ws.recv() == "through the tunnel"
            assert heads[0].startswith(f"CONNECT {target} HTTP/1.1\r\n".encode())
            credentials = base64.b64encode(b"user:pw")
            assert b"\r\nProxy-Authorization: Basic " + credentials + b"\r\n" in heads[0]

    run(main())


def test_client_proxy_from_the_environment_and_its_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> None:
        refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
        async with connect_proxy(refusal) as (proxy, heads):
            # Loopback hosts never use the environment's proxy (as wsio.dialer): a name
            # that is not loopback, never resolved here since the proxy refuses first.
            monkeypatch.setenv("ws_proxy", proxy)
            monkeypatch.delenv("no_proxy", raising=False)
            monkeypatch.delenv("NO_PROXY", raising=False)
            with pytest.raises(ProxyError) as info:
                await aio.connect("ws://ws.example.invalid/x")
            assert info.value.status == 407
            assert heads[0].startswith(b"CONNECT ws.example.invalid:80 HTTP/1.1\r\n")
            async with server() as (_, url), aio.connect(url) as ws:  # loopback: direct
                await ws.send("direct")
                assert await ws.recv() == "direct"
            assert len(heads) == 1

    run(main())


def test_reconnecting_waits_out_a_proxy_that_answers_502() -> None:
    async def main() -> None:
        down = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        async with server() as (_, url), connect_proxy(down, down) as (proxy, heads):
            backoff = aio.Backoff(initial=0.01, jitter=0.0)
            async for ws in aio.connect(url, proxy=proxy, backoff=backoff):
                await ws.send("at last")
                assert await ws.recv() == "at last"
                break
            assert len(heads) == 3

    run(main())


def test_client_open_timeout_covers_a_proxy_that_never_answers() -> None:
    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # reads nothing, answers nothing

        proxy = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = proxy.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeTimeoutError):
            await aio.connect(
                "ws://127.0.0.1:9/", proxy=f"http://127.0.0.1:{port}", open_timeout=0.3
            )
        for writer in held:
            writer.close()
        proxy.close()
        await proxy.wait_closed()

    run(main())


class _NoThreads(concurrent.futures.ThreadPoolExecutor):
    """A default executor that refuses work: what runs on it would be a thread."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the loop's executor was used")


def test_client_proxy_exchange_runs_on_the_loop_without_a_thread() -> None:
    # A client through a proxy costs no thread: connecting to the proxy (an IP literal:
    # no name lookup) and its CONNECT exchange are the loop's own I/O.
    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(_NoThreads())
        async with server() as (_, url), connect_proxy() as (proxy, heads):
            async with aio.connect(url, proxy=proxy) as ws:
                await ws.send("no thread")
                assert await ws.recv() == "no thread"
            assert len(heads) == 1

    run(main())


# What a proxy may answer instead of tunnelling, each as wsio.dialer reports it.
PROXY_ANSWERS = {
    "refused": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
    "bytes after its answer": b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 101 early",
    "closed mid-head": b"HTTP/1.1 200 OK\r\nVia: 1.1",
    "over max_line": b"HTTP/1.1 200 OK\r\nVia: " + b"x" * 9000 + b"\r\n\r\n",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
}


@pytest.mark.parametrize("answer", list(PROXY_ANSWERS.values()), ids=list(PROXY_ANSWERS))
def test_client_proxy_failures_are_the_dialers(answer: bytes) -> None:
    # The same exception type, message and (for a refusal) status and headers as the
    # blocking Dialer's, against the same proxy.
    async def main() -> None:
        async with connect_proxy(answer, answer) as (proxy, heads):
            with pytest.raises(Exception) as blocking:
                await asyncio.to_thread(Dialer(proxy=proxy, timeout=TIMEOUT).dial, "ws://[::1]:9/")
            with pytest.raises(Exception) as native:
                await aio.connect("ws://[::1]:9/", proxy=proxy)
            assert type(native.value) is type(blocking.value)
            assert str(native.value) == str(blocking.value)
            assert isinstance(native.value, (ProxyError, HandshakeError))
            if isinstance(native.value, ProxyError):
                assert isinstance(blocking.value, ProxyError)
                assert native.value.status == blocking.value.status == 403
                assert native.value.headers == blocking.value.headers
            assert heads[0] == heads[1]  # the same CONNECT request

    run(main())


def test_a_connect_cancelled_mid_handshake_closes_its_connection() -> None:
    # The caller gives up (its own timeout, a cancelled task) while the server has not
    # answered: the TCP connection ends then, not when the garbage collector finds an
    # unclosed transport.
    async def main() -> None:
        requests: list[bytes] = []
        ended = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            requests.append(await reader.readuntil(b"\r\n\r\n"))
            assert await reader.read() == b""  # the client hung up
            writer.close()
            ended.set()

        peer = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with peer:
            url = f"ws://127.0.0.1:{peer.sockets[0].getsockname()[1]}/"
            attempt = asyncio.ensure_future(aio.connect(url, open_timeout=None))
            while not requests:
                await asyncio.sleep(0.01)
            attempt.cancel()
            with pytest.raises(asyncio.CancelledError):
                await attempt
            await ended.wait()

    run(main())


def test_client_answers_a_message_before_a_bad_frame_sent_octet_by_octet() -> None:
    # Autobahn 3.3: a text message, a frame with RSV bits set and a Ping, each sent one
    # byte at a time. The message is read whole long before the bad frame: its echo
    # goes out first, then the Close 1002 (RFC 6455 §5.5.1).
    received = bytearray()
    done = asyncio.Event()

    async def collect(reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                received.extend(data)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader))
        collector = asyncio.ensure_future(collect(reader))
        with contextlib.suppress(OSError):  # the client hangs up after its Close
            for octet in b"\x81\x05hello" + b"\xb1\x05hello" + b"\x89\x00":
                writer.write(bytes([octet]))
                await writer.drain()
                await asyncio.sleep(0.002)
        await collector
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        done.set()

    async def main() -> None:
        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        await echo_until_failed(listener)
        await done.wait()
        listener.close()

    run(main())
    assert received[:2] == b"\x81\x85"  # the echo of "hello" came first...
    assert received[2 + 4 + 5] == 0x88  # ...then the Close


def test_unix_socket_and_response_head_limit(tmp_path: Path) -> None:
    # The Dialer's names: unix_path= for a Unix socket, max_head_size= for the 101.
    path = str(tmp_path / "ws.sock")

    async def main() -> None:
        async with aio.serve(echo, path=path, header={"X-Big": "b" * 2000}):
            async with aio.connect("ws://localhost/over-unix", unix_path=path) as ws:
                await ws.send("over a Unix socket")
                assert await ws.recv() == "over a Unix socket"
            with pytest.raises(MalformedResponseError):
                await aio.connect("ws://localhost/", unix_path=path, max_head_size=1024)

    run(main())
