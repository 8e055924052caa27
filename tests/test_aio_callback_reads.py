"""wsio.aio's callback level reading, on asyncio's default loop (where the compiled
Stream reads the socket itself) and on uvloop: frames held by pause_reading come out in
order after resume_reading, and a peer that leaves without a Close, or resets the
connection, ends it with 1006."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop
from websockets.sync.client import connect

from wsio import aio

HANG = 30.0  # a bound on a hang, never on how fast anything is

LOOPS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


class Pauser(aio.Listener):
    """Keeps every binary payload and echoes it; pauses reading after the first one
    (with ``pause``)."""

    def __init__(self, pause: bool) -> None:
        self.pause = pause
        self.closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.payloads: list[bytes] = []
        self.transport: aio.Transport | None = None

    def on_connect(self, transport: aio.Transport) -> None:
        self.transport = transport

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode == 2:
            self.payloads.append(frame.bytes())
            if self.pause and len(self.payloads) == 1:
                transport.pause_reading()
            transport.send(2, frame.payload)

    def on_close(self, transport: aio.Transport, code: int, reason: str) -> None:
        self.closed.set_result((code, reason))


async def _serve(pause: bool) -> tuple[Any, int, list[Pauser]]:
    listeners: list[Pauser] = []

    def factory() -> Pauser:
        listeners.append(Pauser(pause))
        return listeners[-1]

    server = await aio.create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], listeners


def _frame(payload: bytes) -> bytes:
    # A masked binary frame (a zero key: the payload goes as it is), RFC 6455 §5.2.
    return struct.pack("!BB", 0x82, 0x80 | len(payload)) + b"\0\0\0\0" + payload


async def _upgrade(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    return reader, writer


@pytest.mark.parametrize("loop", LOOPS)
def test_frames_held_by_pause_reading_come_in_order_after_resume(loop: str) -> None:
    async def main() -> None:
        server, port, listeners = await _serve(pause=True)
        messages = [b"m%d" % i for i in range(20)]

        def client() -> list[bytes]:
            with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
                for message in messages:
                    ws.send(message)
                got = []
                for _ in messages:
                    echo = ws.recv(timeout=HANG)
                    assert isinstance(echo, bytes)
                    got.append(echo)
                return got

        echoes = asyncio.get_running_loop().run_in_executor(None, client)
        while not listeners or not listeners[0].payloads:
            await asyncio.sleep(0.01)
        listener = listeners[0]
        assert listener.transport is not None
        # The other frames (sent before the first echo came back) wait while paused.
        await asyncio.sleep(0.1)
        assert listener.payloads == messages[:1]
        listener.transport.resume_reading()
        assert await asyncio.wait_for(echoes, HANG) == messages
        assert listener.payloads == messages
        assert await asyncio.wait_for(listener.closed, HANG) == (1000, "")
        server.close()
        await server.wait_closed()

    LOOPS[loop](asyncio.wait_for(main(), HANG))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("leave", ["end of stream", "reset"])
def test_a_peer_leaving_without_a_close_is_1006(loop: str, leave: str) -> None:
    async def main() -> None:
        server, port, listeners = await _serve(pause=False)
        reader, writer = await _upgrade(port)
        writer.write(_frame(b"hello"))
        assert await reader.readexactly(7) == b"\x82\x05hello"
        if leave == "reset":
            raw = writer.get_extra_info("socket")
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        assert await asyncio.wait_for(listeners[0].closed, HANG) == (1006, "")
        server.close()
        await server.wait_closed()

    LOOPS[loop](asyncio.wait_for(main(), HANG))


def test_reads_after_a_full_one_take_the_frames_behind_a_large_frame() -> None:
    # The core sizes the callback level's reads: four masked 8 KiB frames waiting in the
    # kernel are taken in one read once the buffer has grown (not one read per frame,
    # as when the room offered ended at the frame being read whole), and the buffer
    # stays within the size a drained connection keeps.
    from wsio._engine.protocol import WHOLE_FRAME_MAX, BinaryMessage, ServerProtocol

    core = ServerProtocol()
    core.whole_frame_max = WHOLE_FRAME_MAX
    payloads = [bytes([i]) * 8192 for i in range(4)]
    # Masked with a zero key (RFC 6455 §5.2, 16-bit length).
    burst = b"".join(struct.pack("!BBH", 0x82, 0x80 | 126, 8192) + bytes(4) + p for p in payloads)
    for _ in range(4):
        reads = 0
        pos = 0
        received = []
        while pos < len(burst):
            view = core.get_buffer(-1)
            n = min(len(view), len(burst) - pos)
            view[:n] = burst[pos : pos + n]
            pos += n
            reads += 1
            core.buffer_updated(n)
            for event in core.events_received():
                assert isinstance(event, BinaryMessage)
                received.append(event.data)
        assert received == payloads
    assert reads == 1
    assert core.buffer_size <= 1 << 18


class Answerer(aio.Listener):
    """Echoes each binary frame's payload view; a payload starting with ``M`` is sent
    from a bytearray that is overwritten as soon as ``send`` returns."""

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode != 2:
            return
        if frame.payload[:1] == b"M":
            mutable = bytearray(frame.payload)
            transport.send(2, mutable)
            mutable[:] = bytes(len(mutable))
        else:
            transport.send(2, frame.payload)


def _client_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    # RFC 6455 §5.2 (a client's frame, masked with ``key``, §5.3).
    n = len(payload)
    head = (
        struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        if n < 126
        else struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    )
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


def _server_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    head = (
        struct.pack("!BB", 0x80 | opcode, n)
        if n < 126
        else struct.pack("!BBH", 0x80 | opcode, 126, n)
    )
    return head + payload


@pytest.mark.parametrize("loop", LOOPS)
def test_answers_written_at_the_end_of_a_read_keep_their_bytes_and_order(loop: str) -> None:
    # The frames answered while one read is parsed are written together once it is:
    # each answer still carries the bytes it had when send returned (a view of the
    # read buffer that later frames of the same read are compacted over; a caller's
    # bytearray overwritten after send), and Pongs keep their place among them.
    rng = random.Random(10)

    async def main() -> None:
        server = await aio.create_server(Answerer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await _upgrade(port)
        wire = bytearray()
        expected = bytearray()
        for i in range(600):
            if i % 17 == 5:
                payload = b"ping %d" % i
                wire += _client_frame(9, payload, rng.randbytes(4))
                expected += _server_frame(10, payload)
                continue
            payload = (b"M" if i % 3 == 0 else b"V") + rng.randbytes(rng.randrange(10, 20000))
            wire += _client_frame(2, payload, rng.randbytes(4))
            expected += _server_frame(2, payload)
        pos = 0
        try:
            while pos < len(wire):
                # Up to more than the read buffer's largest size (256 KiB): reads that
                # fill it end inside a frame, which is then compacted to its front.
                step = rng.randrange(1, 400000)
                writer.write(wire[pos : pos + step])
                pos += step
                await writer.drain()
                if rng.random() < 0.3:
                    await asyncio.sleep(0.002)  # the server reads what has come so far
            echoed = await reader.readexactly(len(expected))
        finally:
            writer.close()
            server.close()
            await server.wait_closed()
        assert echoed == expected

    LOOPS[loop](asyncio.wait_for(main(), HANG))


def test_a_frame_compacted_in_a_read_pass_leaves_queued_views_intact() -> None:
    # The callback level sends views of the read buffer and writes them at the end of
    # the read pass; a frame whose header comes later in that pass and must be moved to
    # the buffer's front for room is moved into a new buffer, not over those views.
    # (next_piece is C-only when compiled: this drives the core as Stream does, in the
    # pure-Python build of the same source.)
    from wsio._engine.protocol import WHOLE_FRAME_MAX, ServerProtocol

    core = ServerProtocol()
    if not hasattr(core, "next_piece"):
        pytest.skip("the core is compiled: its per-piece API is C-only")
    core.whole_frame_max = WHOLE_FRAME_MAX

    def frame(payload: bytes) -> bytes:  # masked with a zero key (RFC 6455 §5.2)
        n = len(payload)
        head = struct.pack("!BB", 0x82, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x82, 0xFE, n)
        return head + bytes(4) + payload

    stream = frame(b"s" * 94) * 10000  # 100-byte frames: full reads end inside one
    pos = 0
    while True:  # full reads grow the buffer
        view = core.get_buffer(-1)
        if core.buffer_size >= 1 << 16:
            break
        view[:] = stream[pos : pos + len(view)]
        pos += len(view)
        core.add_bytes(len(view))
        while core.next_piece():
            core.handle_piece()
        core.data_to_send()
    capacity = core.buffer_size
    # The rest of the partial frame, a 5,000-byte frame (queued as a view when
    # answered), then the start of a frame the buffer holds but not behind them.
    data = stream[pos : pos + (100 - pos % 100) % 100] + frame(b"A" * 5000)
    data = (data + frame(b"B" * (capacity - 100)))[: len(view)]
    view[:] = data
    core.add_bytes(len(data))
    while core.next_piece():
        core.handle_piece()
        if core.piece_length == 5000:
            core.send_data(2, core.piece_view())
    out = core.data_to_send()
    assert bytes(out[1]) == b"A" * 5000


class Flooder(aio.Listener):
    """Answers the first binary frame with ``COPIES`` sends of its payload view, and
    notes the write buffer size asyncio reports right after."""

    COPIES = 1000

    def __init__(self) -> None:
        self.buffered: list[int] = []

    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        if frame.opcode == 2 and not self.buffered:
            for _ in range(self.COPIES):
                transport.send(2, frame.payload)
            self.buffered.append(transport.get_write_buffer_size())


@pytest.mark.parametrize("loop", LOOPS)
def test_many_answers_from_one_callback_reach_asyncio_and_its_limits(loop: str) -> None:
    # Answers wait for the end of the read only up to a bound: a listener that sends
    # much from one callback to a peer not reading sees asyncio's buffer fill (and
    # pause_writing), as when every send was written at once.
    async def main() -> None:
        listeners: list[Flooder] = []

        def factory() -> Flooder:
            listeners.append(Flooder())
            return listeners[-1]

        server = await aio.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await _upgrade(port)
        payload = bytes(range(256)) * 32  # 8 KiB
        writer.write(struct.pack("!BBH", 0x82, 0x80 | 126, len(payload)) + bytes(4) + payload)
        try:
            while not listeners or not listeners[0].buffered:
                await asyncio.sleep(0.01)
            echo = struct.pack("!BBH", 0x82, 126, len(payload)) + payload
            echoed = await reader.readexactly(len(echo) * Flooder.COPIES)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()
        assert listeners[0].buffered[0] > 0
        assert echoed == echo * Flooder.COPIES

    LOOPS[loop](asyncio.wait_for(main(), HANG))
