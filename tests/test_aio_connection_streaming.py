"""wsio.aio.Connection.recv_streaming: a message's pieces as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tracemalloc
from collections.abc import Iterator

import pytest
import websockets.asyncio.client
import websockets.asyncio.server
from tests.test_aio_connection import run, switching_protocols

from wsio import aio
from wsio.exceptions import ConnectionClosedError

MIB = 2**20
FRAGMENT = 256 * 1024


def test_a_16_mib_message_streams_in_bounded_memory() -> None:
    # websockets sends the message as 64 frames of 256 KiB made as it goes; the client
    # consumes each piece slower than they come (max_queue pauses reading), and never
    # holds more than a few frames.
    def fragments() -> Iterator[bytes]:
        for i in range(16 * MIB // FRAGMENT):
            yield bytes([i]) * FRAGMENT

    async def handler(peer: websockets.asyncio.server.ServerConnection) -> None:
        await peer.recv()  # the client is streaming: nothing arrives before it asks
        await peer.send(fragments())
        await peer.send("after")
        await peer.wait_closed()

    async def main() -> tuple[int, list[int], int]:
        # Uncompressed: the size on the wire is the size in memory.
        async with websockets.asyncio.server.serve(
            handler, "127.0.0.1", 0, compression=None
        ) as srv:
            port = srv.sockets[0].getsockname()[1]
            url = f"ws://127.0.0.1:{port}"
            async with aio.connect(url, max_message_size=None, max_queue=2) as ws:
                total = 0
                firsts: list[int] = []
                tracemalloc.start()
                try:
                    await ws.send("go")
                    async for piece in ws.recv_streaming():
                        assert isinstance(piece, bytes)
                        total += len(piece)
                        firsts.extend(piece[:1])  # websockets ends with an empty frame
                        await asyncio.sleep(0.001)  # a consumer slower than the network
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                assert await ws.recv() == "after"  # recv goes on after the stream
                return total, firsts, peak

    total, firsts, peak = run(main())
    assert total == 16 * MIB
    assert sorted(set(firsts)) == list(range(64))  # every fragment arrived, in order
    assert firsts == sorted(firsts)
    assert peak < 4 * MIB, f"{peak} bytes traced while streaming 16 MiB"


def test_text_cut_inside_characters_decodes_piece_by_piece() -> None:
    # "hé€" (68 c3a9 e282ac) in three frames cut inside both characters, sent one frame
    # per piece the client has taken (a raw peer: websockets cannot cut a character).
    cut = [b"\x01\x02h\xc3", b"\x00\x03\xa9\xe2\x82", b"\x80\x01\xac"]
    messages = [
        *cut,  # read as text
        *cut,  # read with decode=False
        *cut[:2],  # given up on after its first piece: the rest is dropped
        b"\x80\x01\xac",
        b"\x81\x03end",
    ]

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader))
        for frame in messages[:-1]:
            writer.write(frame)
            await reader.readexactly(2 + 4 + 4)  # the client's masked "next"
        writer.write(messages[-1])
        await reader.readexactly(2 + 4 + 2)  # the client's Close 1000...
        writer.write(b"\x88\x02\x03\xe8")  # ...answered
        writer.close()

    async def main() -> tuple[list[str], list[bytes], list[str], str]:
        peer = await asyncio.start_server(accept, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{peer.sockets[0].getsockname()[1]}"
        async with peer, aio.connect(url) as ws:
            text: list[str] = []
            async for piece in ws.recv_streaming():
                text.append(piece)  # type: ignore[arg-type]
                await ws.send("next")
            raw: list[bytes] = []
            async for piece in ws.recv_streaming(decode=False):
                raw.append(piece)  # type: ignore[arg-type]
                await ws.send("next")
            dropped: list[str] = []
            async with contextlib.aclosing(ws.recv_streaming()) as pieces:
                async for piece in pieces:
                    dropped.append(piece)  # type: ignore[arg-type]
                    await ws.send("next")
                    break
            await ws.send("next")  # for the dropped frame
            await ws.send("next")  # for "end"
            last = await ws.recv()
            await ws.close()
            return text, raw, dropped, last  # type: ignore[return-value]

    text, raw, dropped, last = run(main())
    assert text == ["h", "é", "€"]
    assert raw == [b"h\xc3", b"\xa9\xe2\x82", b"\xac"]
    assert dropped == ["h"]
    assert last == "end"


def test_a_connection_lost_mid_message_ends_the_stream_with_an_error() -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader) + b"\x02\x03abc")
        await reader.readexactly(2 + 4 + 4)  # the client has the first piece
        writer.transport.abort()

    async def main() -> list[bytes]:
        peer = await asyncio.start_server(accept, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{peer.sockets[0].getsockname()[1]}"
        pieces: list[bytes] = []
        async with peer:
            ws = await aio.connect(url)
            with pytest.raises(ConnectionClosedError):
                async for piece in ws.recv_streaming():
                    pieces.append(piece)  # type: ignore[arg-type]
                    await ws.send("next")
            assert ws.close_code == 1006
        return pieces

    assert run(main()) == [b"abc"]


def test_max_queue_bounds_memory_when_a_small_read_inflates_into_many_messages() -> None:
    # 300 messages of 64 KiB of zeros compress to about 100 bytes each: one read of the
    # client's frames inflates into 19 MiB of messages. The handler reads none until the
    # client has sent them all; max_queue stops the connection at 4 of them.
    count, size = 300, 64 * 1024
    sent = asyncio.Event()
    received: list[int] = []

    async def handler(ws: aio.Connection) -> None:
        await sent.wait()
        await asyncio.sleep(0.2)  # the server has read what came (or would have)
        for _ in range(count):
            message = await ws.recv()
            assert message == bytes(size)
            received.append(len(message))
        await ws.send("done")

    async def main() -> int:
        async with aio.serve(handler, "127.0.0.1", 0, max_queue=4) as server:
            port = server.sockets[0].getsockname()[1]
            async with websockets.asyncio.client.connect(f"ws://127.0.0.1:{port}") as peer:
                tracemalloc.start()
                try:
                    for _ in range(count):
                        await peer.send(bytes(size))
                    sent.set()
                    assert await peer.recv() == "done"
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                return peak

    peak = run(main())
    assert received == [size] * count
    # The client's own 64 KiB messages and compressor, 4 queued, the one being inflated.
    assert peak < 4 * MIB, f"{peak} bytes traced with max_queue=4"


def test_a_16_mib_single_frame_streams_in_bounded_memory() -> None:
    # One frame of 16 MiB, written by a raw peer from one buffer a slice at a time (a
    # library peer in this process would copy the frame, and be what tracemalloc sees):
    # the client hands its pieces on as they are read instead of joining the frame.
    payload = bytes(range(256)) * (16 * MIB // 256)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await switching_protocols(reader))
        await reader.readexactly(2 + 4 + 2)  # the client's masked "go"
        writer.write(b"\x82\x7f" + struct.pack("!Q", len(payload)))
        view = memoryview(payload)
        for start in range(0, len(payload), 65536):
            writer.write(view[start : start + 65536])
            await writer.drain()
        writer.write(b"\x81\x05after")
        await reader.readexactly(2 + 4 + 2)  # the client's Close 1000...
        writer.write(b"\x88\x02\x03\xe8")  # ...answered
        writer.close()

    async def main() -> tuple[int, bool, int]:
        peer = await asyncio.start_server(accept, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{peer.sockets[0].getsockname()[1]}"
        async with peer, aio.connect(url, max_message_size=None, max_queue=2) as ws:
            total = 0
            in_order = True
            tracemalloc.start()
            try:
                await ws.send("go")
                async for piece in ws.recv_streaming():
                    assert isinstance(piece, bytes)
                    in_order &= not piece or piece[0] == total % 256
                    total += len(piece)
                    await asyncio.sleep(0)  # the network may run ahead of the consumer
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert await ws.recv() == "after"
            await ws.close()
            return total, in_order, peak

    total, in_order, peak = run(main())
    assert total == 16 * MIB
    assert in_order
    assert peak < 4 * MIB, f"{peak} bytes traced while streaming a 16 MiB frame"
