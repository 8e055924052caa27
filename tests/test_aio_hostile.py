"""wsio.aio's callback level against peers that break the rules or never finish: the
limits (1009), bad UTF-8 (1007), protocol errors (1002) with the right Close frames; a
handshake that never ends, a Close never answered, a reader that never reads, too many
connections, a server that never answers the client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import socket
import struct
import tracemalloc
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, cast

import pytest
import websockets
from websockets.typing import Origin

from wsio import aio
from wsio.exceptions import ConnectionClosed, HandshakeTimeoutError

TIMEOUT = 10.0


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT * 3))


class Recorder(aio.Listener):
    """Echoes frames and keeps what happened to the connection."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.transport: aio.Transport | None = None
        self.paused = 0

    def on_connect(self, transport: aio.Transport) -> None:
        self.transport = transport

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode < 8:
            transport.send(frame.opcode, frame.payload, frame.fin)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))

    def pause_writing(self) -> None:
        self.paused += 1


class RawClient:
    """A client written by hand, to send what no library would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, handshake: bool = True) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if handshake:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 101 ")
        return client

    def frame(self, opcode: int, payload: bytes, fin: bool = True, masked: bool = True) -> None:
        """Send one frame (masked with a zero key, so the payload goes as it is)."""
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        mask_bit = 0x80 if masked else 0
        if n < 126:
            head = bytes([first, mask_bit | n])
        elif n < 65536:
            head = bytes([first, mask_bit | 126]) + struct.pack("!H", n)
        else:
            head = bytes([first, mask_bit | 127]) + struct.pack("!Q", n)
        self.writer.write(head + (b"\0\0\0\0" if masked else b"") + payload)

    async def read_frame(self) -> tuple[int, bytes]:
        """The server's next frame (servers do not mask)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(n)

    async def read_eof(self) -> None:
        """Wait until the server ends the connection (a reset counts)."""
        try:
            while await asyncio.wait_for(self.reader.read(65536), TIMEOUT):
                pass
        except ConnectionResetError:
            pass


async def _server(**options: Any) -> tuple[Any, int, list[Recorder]]:
    listeners: list[Recorder] = []

    def factory() -> Recorder:
        listeners.append(Recorder())
        return listeners[-1]

    server = await aio.create_server(factory, "127.0.0.1", 0, **options)
    return server, server.sockets[0].getsockname()[1], listeners


async def _finish(server: Any, listeners: list[Recorder]) -> None:
    """Stop listening once every connection has ended (its clients closed)."""
    await asyncio.wait_for(asyncio.gather(*(r.closed for r in listeners)), TIMEOUT)
    server.close()
    await server.wait_closed()


# -- violations: the Close frame that answers each, then the end ---------------------------


def _over_max_message_size(c: RawClient) -> None:
    c.frame(2, b"x" * 900, fin=False)
    c.frame(0, b"x" * 900)


def _too_many_fragments(c: RawClient) -> None:
    for i in range(10):
        c.frame(2 if i == 0 else 0, b"x", fin=False)


CASES: dict[str, tuple[Callable[[RawClient], None], int]] = {
    # RFC 6455 §5.1: "The server MUST close the connection upon receiving a frame that
    # is not masked."
    "unmasked": (lambda c: c.frame(2, b"x", masked=False), 1002),
    # §5.2: opcodes 3-7 are reserved.
    "reserved opcode": (lambda c: c.frame(3, b""), 1002),
    # §5.4: a continuation with no message to continue.
    "lone continuation": (lambda c: c.frame(0, b"x"), 1002),
    # §5.5: control frames are at most 125 bytes and not fragmented.
    "long ping": (lambda c: c.frame(9, b"p" * 126), 1002),
    # §8.1: text must be UTF-8.
    "bad utf-8": (lambda c: c.frame(1, b"ok \xff"), 1007),
    "bad utf-8 in a piece": (lambda c: c.frame(1, b"a" * 9000 + b"\xc0\x80"), 1007),
    "text ends mid-character": (lambda c: c.frame(1, "é".encode()[:1]), 1007),
    # The limits: 1009 (RFC 6455 §7.4.1: "a message that is too big for it to process").
    "frame over max_frame_size": (lambda c: c.frame(2, b"x" * 2000), 1009),
    "message over max_message_size": (_over_max_message_size, 1009),
    "too many fragments": (_too_many_fragments, 1009),
}


@pytest.mark.parametrize("case", list(CASES))
def test_violation_closes_with_its_code(case: str) -> None:
    send, code = CASES[case]

    async def main() -> None:
        limits: dict[str, Any] = {}
        if code == 1009:
            limits = {"max_frame_size": 1500, "max_message_size": 1500, "max_fragments": 5}
        server, port, listeners = await _server(**limits)
        client = await RawClient.open(port)
        send(client)
        # Frames before the violation are echoed as they arrive; then the Close.
        opcode, body = await client.read_frame()
        while opcode < 8:
            opcode, body = await client.read_frame()
        assert (opcode, body[:2]) == (8, code.to_bytes(2, "big"))
        await client.read_eof()  # the server closes the TCP connection first
        assert (await asyncio.wait_for(listeners[0].closed, TIMEOUT))[0] == code
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_ping_answered_and_close_completed() -> None:
    async def main() -> None:
        server, port, listeners = await _server()
        client = await RawClient.open(port)
        client.frame(9, b"hi")
        assert await client.read_frame() == (10, b"hi")
        client.frame(8, struct.pack("!H", 1000) + b"bye")
        assert await client.read_frame() == (8, struct.pack("!H", 1000))
        await client.read_eof()
        assert await asyncio.wait_for(listeners[0].closed, TIMEOUT) == (1000, "bye")
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_limits_with_websockets_client() -> None:
    async def main() -> None:
        server, port, listeners = await _server(max_message_size=1000)
        async with websockets.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            await ws.send(b"x" * 2000)
            with pytest.raises(websockets.ConnectionClosedError):
                await ws.recv()
            assert ws.close_code == 1009
        await _finish(server, listeners)

    run(main())


# -- peers that never finish ---------------------------------------------------------------


def test_handshake_that_never_finishes_is_cut_off() -> None:
    async def main() -> None:
        server, port, listeners = await _server(handshake_timeout=0.5)
        client = await RawClient.open(port, handshake=False)
        client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        await client.read_eof()
        assert listeners == []  # no listener was made for it
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_handshakes_are_cut_off_each_at_its_own_deadline() -> None:
    # One timer serves every handshake in flight: clients that connected at different
    # times are cut off in the order they came, one that finished its handshake in
    # time keeps its connection, and one that comes after the others were dropped
    # (the timer idle by then) is cut off too.
    async def main() -> None:
        server, port, listeners = await _server(handshake_timeout=0.4)
        first = await RawClient.open(port, handshake=False)
        await asyncio.sleep(0.2)
        second = await RawClient.open(port, handshake=False)
        upgraded = await RawClient.open(port)
        ended: list[str] = []

        async def watch(name: str, client: RawClient) -> None:
            await client.read_eof()
            ended.append(name)

        await asyncio.gather(watch("second", second), watch("first", first))
        assert ended == ["first", "second"]
        upgraded.frame(2, b"still here")
        assert await upgraded.read_frame() == (2, b"still here")
        late = await RawClient.open(port, handshake=False)
        late.writer.write(b"GET / HTTP/1.1\r\n")
        await late.read_eof()
        assert len(listeners) == 1  # only the upgraded client got a listener
        for client in (first, second, upgraded, late):
            client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_head_buffer_reused_after_a_dropped_handshake_holds_only_the_new_request() -> None:
    # The server reuses request-head parsers (their buffers) across connections: one
    # whose client left mid-head, or one that completed, must not show through.
    async def main() -> None:
        heads: list[bytes] = []
        server, port, listeners = await _server(on_request_bytes=heads.append)
        dropped = await RawClient.open(port, handshake=False)
        dropped.writer.write(b"GET /left HTTP/1.1\r\nHost: x\r\nX-Left: " + b"z" * 3000)
        await dropped.writer.drain()
        dropped.writer.close()
        await dropped.writer.wait_closed()
        await asyncio.sleep(0.1)  # the server sees the end of the stream
        for _ in range(3):
            client = await RawClient.open(port)
            client.frame(2, b"ping")
            assert await client.read_frame() == (2, b"ping")
            client.writer.close()
            await client.writer.wait_closed()
        assert len(heads) == 3
        for head in heads:
            assert head.startswith(b"GET / HTTP/1.1\r\n") and head.endswith(b"\r\n\r\n")
            assert b"X-Left" not in head and b"zzzz" not in head
        await _finish(server, listeners)

    run(main())


def test_close_never_answered_times_out() -> None:
    async def main() -> None:
        server, port, listeners = await _server(close_timeout=0.5)
        client = await RawClient.open(port)
        await asyncio.sleep(0)
        for _ in range(100):
            if listeners and listeners[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        transport = listeners[0].transport
        assert transport is not None
        transport.send_close(1001, "going away")
        assert await client.read_frame() == (8, struct.pack("!H", 1001) + b"going away")
        await client.read_eof()  # never answered: the server drops the connection
        assert await asyncio.wait_for(listeners[0].closed, TIMEOUT) == (1006, "")
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def _never_reading(port: int) -> socket.socket:
    """A blocking socket that sends an opening handshake and never reads (its receive
    buffer kept small, so that what the server sends stays in the server)."""
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    raw.sendall(
        f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return raw


def test_slow_reader_pauses_writing_and_memory_stays_bounded() -> None:
    async def main() -> None:
        server, port, listeners = await _server()
        raw = _never_reading(port)
        for _ in range(500):
            if listeners and listeners[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        listener = listeners[0]
        transport = listener.transport
        assert transport is not None
        chunk = b"x" * 65536
        # Send as a well-behaved producer does: until told to pause.
        sent = 0
        while not listener.paused and sent < 4096:
            transport.send(2, chunk)
            sent += 1
            await asyncio.sleep(0)
        assert listener.paused == 1
        # What asyncio holds is bounded by its high-water mark plus the last frame.
        assert transport.get_write_buffer_size() <= 64 * 1024 + len(chunk) + 14
        assert sent < 4096
        raw.close()
        await _finish(server, listeners)

    run(main())


def test_max_connections_refuses_with_503() -> None:
    async def main() -> None:
        server, port, listeners = await _server(max_connections=1)
        first = await RawClient.open(port)
        second = await RawClient.open(port, handshake=False)
        head = await asyncio.wait_for(second.reader.read(), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 503 ")
        first.frame(2, b"still here")
        assert await first.read_frame() == (2, b"still here")
        first.writer.close()
        second.writer.close()
        await _finish(server, listeners)

    run(main())


def test_origins_refused_with_403() -> None:
    async def main() -> None:
        server, port, listeners = await _server(origins=["https://good.example"])
        with pytest.raises(websockets.InvalidStatus) as info:
            await websockets.connect(
                f"ws://127.0.0.1:{port}/", origin=Origin("https://evil.example")
            )
        assert info.value.response.status_code == 403
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/", origin=Origin("https://good.example")
        ) as ws:
            await ws.send("ok")
            assert await ws.recv() == "ok"
        await _finish(server, listeners)

    run(main())


def test_client_open_timeout_on_a_silent_server() -> None:
    async def main() -> None:
        held: list[asyncio.StreamWriter] = []
        silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        with pytest.raises(HandshakeTimeoutError):
            await aio.create_connection(Recorder, f"ws://127.0.0.1:{port}/", open_timeout=0.3)
        for writer in held:
            writer.close()
            await writer.wait_closed()
        silent.close()

    run(main())


def test_declared_frame_length_costs_nothing_until_bytes_arrive() -> None:
    # A header declaring a frame just under max_frame_size, then a little of its
    # payload, from several connections: the server's memory follows the bytes that
    # arrived, never the lengths the peers declared (DESIGN: "every buffer grows with
    # bytes that arrived"). Before the fix each connection cost 16 MiB at once.
    declared = 16 * 2**20 - 1
    sent = 300 * 1024  # more than one read: the frame arrives in pieces

    async def main() -> int:
        server, port, listeners = await _server()
        clients = [await RawClient.open(port) for _ in range(8)]
        tracemalloc.start()
        try:
            for client in clients:
                head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", declared) + b"\0" * 4
                client.writer.write(head + b"x" * sent)
                await client.writer.drain()
            await asyncio.sleep(0.5)  # let the server read everything that was sent
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        for client in clients:
            client.writer.close()
        await _finish(server, listeners)
        return peak

    peak = run(main())
    # 8 × 16 MiB before; what arrived (8 × 300 KiB) plus read buffers now.
    assert peak < 32 * 2**20, f"{peak / 2**20:.1f} MiB traced for 2.3 MiB received"


# -- the high level (wsio.aio.serve) against the same peers --------------------------------


async def _serve(handler: Any, **options: Any) -> tuple[aio.Server, int]:
    server = await aio.serve(handler, "127.0.0.1", 0, **options)
    return server, server.sockets[0].getsockname()[1]


def test_serve_fails_a_peer_that_never_answers_a_ping_with_1011() -> None:
    async def main() -> None:
        server, port = await _serve(
            lambda ws: ws.wait_closed(), ping_interval=0.1, ping_timeout=0.3, close_timeout=0.3
        )
        client = await RawClient.open(port)  # reads, never answers
        opcode, _ = await client.read_frame()
        while opcode == 9:  # the keepalive Ping, unanswered
            opcode, body = await client.read_frame()
        assert (opcode, body) == (8, struct.pack("!H", 1011) + b"keepalive ping timeout")
        await client.read_eof()
        client.writer.close()
        await server.close()

    run(main())


def test_serve_refuses_connections_over_max_connections_with_503() -> None:
    async def main() -> None:
        server, port = await _serve(lambda ws: ws.wait_closed(), max_connections=1)
        first = await RawClient.open(port)
        second = await RawClient.open(port, handshake=False)
        head = await asyncio.wait_for(second.reader.read(), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 503 ")
        first.frame(8, struct.pack("!H", 1000))  # the first one is still served
        assert await first.read_frame() == (8, struct.pack("!H", 1000))
        await first.read_eof()
        for client in (first, second):
            client.writer.close()
        await server.close()

    run(main())


def test_server_close_is_bounded_when_peers_never_answer() -> None:
    # One peer never reads (its handler is stuck sending to it), one reads but never
    # answers the Close, and one's handler is busy with something else: close() sends
    # 1001 and returns once close_timeout has dropped what did not finish.
    started: list[aio.Connection] = []

    async def handler(ws: aio.Connection) -> None:
        started.append(ws)
        if len(started) == 1:
            while True:
                await ws.send(b"x" * 65536)
        await asyncio.Event().wait()  # not watching its connection at all

    async def main() -> None:
        server, port = await _serve(handler, close_timeout=0.5, compression=None)
        stuck = _never_reading(port)
        while not started:
            await asyncio.sleep(0.01)
        deaf = [await RawClient.open(port) for _ in range(2)]
        while len(started) < 3:
            await asyncio.sleep(0.01)
        await server.close()
        for client in deaf:
            assert await client.read_frame() == (8, struct.pack("!H", 1001) + b"server shutdown")
            await client.read_eof()
            client.writer.close()
        assert all(ws.state.name == "CLOSED" for ws in started)
        stuck.close()

    run(main())


def test_broadcast_skips_a_peer_that_stopped_reading() -> None:
    # RFC 6455 says nothing of slow readers: the limit is write_limit. The peer that
    # never reads stops getting messages once the server holds write_limit bytes for it;
    # the peers that read get every message.
    connected: list[aio.Connection] = []
    limit, size, count = 65536, 16384, 200

    async def hold(ws: aio.Connection) -> None:
        # Small kernel buffers, so that what a peer does not read stays in the server.
        ws.transport.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        connected.append(ws)
        await ws.wait_closed()

    async def main() -> None:
        server, port = await _serve(hold, write_limit=limit, compression=None)
        url = f"ws://127.0.0.1:{port}"
        fast = [await aio.connect(url, max_queue=None, compression=None) for _ in range(2)]
        slow = await RawClient.open(port)
        cast(asyncio.ReadTransport, slow.writer.transport).pause_reading()
        slow.writer.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_RCVBUF, 4096
        )
        while len(connected) < 3:
            await asyncio.sleep(0.01)
        address = slow.writer.transport.get_extra_info("sockname")
        (slow_side,) = [c for c in connected if c.remote_address == address]
        readers = [c for c in connected if c is not slow_side]
        for i in range(count):
            aio.broadcast(connected, i.to_bytes(4, "big") * (size // 4))
            # Let the readers drain before the next message (a reader's buffer over the
            # limit would be skipped too).
            while any(c.transport.get_write_buffer_size() for c in readers):
                await asyncio.sleep(0.001)
            assert slow_side.transport.get_write_buffer_size() <= limit + size + 14
        for ws in fast:
            for i in range(count):
                assert await ws.recv() == i.to_bytes(4, "big") * (size // 4)
            await ws.close()
        slow.writer.transport.abort()
        await server.close()

    run(main())


def _flooder(
    flooding: list[aio.Connection], ended: list[BaseException]
) -> Callable[[aio.Connection], Awaitable[None]]:
    """A handler that sends 64 KiB messages until a send fails (kept in ``ended``)."""

    async def flood(ws: aio.Connection) -> None:
        flooding.append(ws)
        try:
            while True:
                await ws.send(b"x" * 65536)
        except Exception as exc:
            ended.append(exc)
            raise

    return flood


@pytest.mark.parametrize("end", ["keepalive fails", "peer's close answered"])
def test_serve_drops_a_peer_that_never_reads(end: str) -> None:
    # The handler's sends wait at write_limit. Then either the peer answers no Ping and
    # the keepalive fails it (1011), or it sends a Close, which is answered. Either way
    # the last Close waits behind what the peer never read: the connection is dropped
    # after close_timeout, and the waiting send gives up.
    flooding: list[aio.Connection] = []
    ended: list[BaseException] = []
    flood = _flooder(flooding, ended)

    async def main() -> None:
        keepalive = end == "keepalive fails"
        server, port = await _serve(
            flood,
            ping_interval=0.2 if keepalive else None,
            ping_timeout=0.3,
            close_timeout=0.3,
            compression=None,
        )
        stuck = _never_reading(port)
        if not keepalive:
            while not flooding or not flooding[0].transport.get_write_buffer_size():
                await asyncio.sleep(0.01)  # until the server holds what the peer won't read
            stuck.sendall(b"\x88\x82\0\0\0\0" + struct.pack("!H", 1000))
        while not ended:
            await asyncio.sleep(0.05)
        assert isinstance(ended[0], ConnectionClosed)
        assert ended[0].sent_code == (1011 if keepalive else 1000)
        await server.close()
        stuck.close()

    run(main())


def test_serve_write_timeout_drops_a_peer_that_never_reads_without_keepalive() -> None:
    # With no keepalive and no close from anyone, only write_timeout notices that the
    # peer reads nothing: the handler's waiting send fails, the connection ends 1006.
    flooding: list[aio.Connection] = []
    ended: list[BaseException] = []
    flood = _flooder(flooding, ended)

    async def main() -> None:
        server, port = await _serve(flood, ping_interval=None, write_timeout=0.3, compression=None)
        stuck = _never_reading(port)
        while not ended:
            await asyncio.sleep(0.05)
        assert isinstance(ended[0], ConnectionClosed)
        assert ended[0].code == 1006 and ended[0].sent_code is None
        assert flooding[0].transport.write_timeout == 0.3  # the option, not the default
        await server.close()
        stuck.close()

    run(main())


def test_handshake_fed_a_byte_at_a_time_ends_at_the_deadline() -> None:
    # The deadline covers the whole handshake, not each read: a request trickling in
    # (here it would take seconds to finish) is cut off when handshake_timeout is up.
    async def main() -> None:
        server, port, listeners = await _server(handshake_timeout=0.3)
        client = await RawClient.open(port, handshake=False)
        request = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: y\r\n" * 100
        sent = 0
        with contextlib.suppress(OSError):
            while not client.reader.at_eof() and sent < len(request):
                client.writer.write(request[sent : sent + 1])
                await client.writer.drain()
                sent += 1
                await asyncio.sleep(0.01)
        await client.read_eof()
        assert sent < len(request), "the whole request went in before the deadline"
        assert listeners == []
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_header_line_over_max_line_is_refused_with_431() -> None:
    async def main() -> None:
        server, port, listeners = await _server()
        client = await RawClient.open(port, handshake=False)
        # RFC 6585 §5: 431 Request Header Fields Too Large. The line never ends: the
        # server answers once it is over the limit, without waiting for the rest.
        client.writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"j" * 9000)
        head = await asyncio.wait_for(client.reader.read(), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 431 ")
        assert listeners == []
        client.writer.close()
        await _finish(server, listeners)

    run(main())


def test_disconnect_drops_a_peer_that_never_reads_after_close_timeout() -> None:
    # asyncio closes a transport only once it has written what it holds: a peer that
    # never reads would keep a callback-level connection open for ever after
    # disconnect(). The transport aborts it after close_timeout.
    async def main() -> None:
        server, port, listeners = await _server(close_timeout=0.3, compression=False)
        raw = _never_reading(port)
        while not listeners or listeners[0].transport is None:
            await asyncio.sleep(0.01)
        transport = listeners[0].transport
        chunk = b"x" * 65536
        while transport.get_write_buffer_size() < 1 << 20:
            transport.send(2, chunk)  # more than the kernel's buffers take
            await asyncio.sleep(0)
        transport.disconnect()
        assert transport.closed
        assert await asyncio.wait_for(listeners[0].closed, TIMEOUT) == (1006, "")
        raw.close()
        await _finish(server, listeners)

    run(main())


def test_handshake_timeout_none_and_the_default_connection_bound() -> None:
    # The callback level's defaults are wsio.server's: a bound on connections unless
    # None is asked for; no handshake deadline when None is asked for.
    from wsio.server import DEFAULT_MAX_CONNECTIONS

    assert inspect.signature(aio.create_server).parameters["max_connections"].default == (
        DEFAULT_MAX_CONNECTIONS
    )

    async def main() -> None:
        server, port, listeners = await _server(handshake_timeout=None, max_connections=None)
        client = await RawClient.open(port)
        client.frame(2, b"echo")
        assert await client.read_frame() == (2, b"echo")
        client.writer.close()
        await _finish(server, listeners)

    run(main())
