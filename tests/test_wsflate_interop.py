"""permessage-deflate against real peers: websockets' codec, websockets and aiohttp over sockets.

The seed's two wsflate examples are started as scripts and talked to by the websockets
and aiohttp clients with compression on; wsio's client (Dialer + wsutil + wsflate) talks
to websockets and aiohttp servers with compression on.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from websockets.exceptions import ConnectionClosedError
from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame as WSFrame, Opcode
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

import wsio
from wsio import wsflate, wsutil
from wsio.wsflate import Compressor, Decompressor, Parameters

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MESSAGES: list[str | bytes] = [
    "Hello",
    "Hello",
    "",
    "héllo wörld ✓ " * 2000,
    os.urandom(5000) * 3,
    bytes(200_000),
    b"",
    "the end",
]


# -- codec level: websockets' PerMessageDeflate objects, no sockets ------------------

WINDOWS = [9, 10, 12, 15]


@pytest.mark.parametrize("bits", WINDOWS)
@pytest.mark.parametrize("takeover", [True, False])
def test_websockets_codec_decodes_ours(bits: int, takeover: bool) -> None:
    ours = Compressor(bits, no_context_takeover=not takeover)
    theirs = PerMessageDeflate(not takeover, False, bits, 15)
    for message in MESSAGES:
        data = message.encode() if isinstance(message, str) else message
        frame = WSFrame(Opcode.BINARY, ours.compress_message(data), rsv1=True)
        assert theirs.decode(frame, max_size=None).data == data


@pytest.mark.parametrize("bits", WINDOWS)
@pytest.mark.parametrize("takeover", [True, False])
def test_ours_decodes_websockets_codec(bits: int, takeover: bool) -> None:
    theirs = PerMessageDeflate(False, not takeover, 15, bits)
    ours = Decompressor(bits, no_context_takeover=not takeover)
    for message in MESSAGES:
        data = message.encode() if isinstance(message, str) else message
        frame = theirs.encode(WSFrame(Opcode.TEXT, data))
        assert frame.rsv1
        assert ours.decompress_message(frame.data) == data


# -- the seed's examples, talked to by real clients -----------------------------------


def start_example(*args: str) -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLES / args[0]), "--port", "0", *args[1:]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), line
        yield int(line.rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module")
def frames_example() -> Iterator[int]:
    yield from start_example("wsflate_frames.py")


@pytest.fixture(scope="module", params=[[], ["--takeover"]], ids=["default", "takeover"])
def stream_example(request: pytest.FixtureRequest) -> Iterator[int]:
    yield from start_example("wsflate_stream.py", *request.param)


def test_frames_example_with_websockets_client(frames_example: int) -> None:
    with connect(f"ws://127.0.0.1:{frames_example}/", compression="deflate") as ws:
        assert ws.protocol.extensions, "compression was not negotiated"
        messages: list[str | bytes] = ["Hello", "Hello", b"\x00" * 50_000, ""]
        for message in messages:
            ws.send(message)
            assert ws.recv() == "this is an acknowledgement"


def test_frames_example_refuses_without_compression(frames_example: int) -> None:
    # The example drops a client that does not negotiate compression, without a close.
    ws = connect(f"ws://127.0.0.1:{frames_example}/", compression=None)
    with ws, pytest.raises(ConnectionClosedError):
        ws.recv(timeout=10)


def test_frames_example_with_aiohttp_client(frames_example: int) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{frames_example}/", compress=15) as ws,
        ):
            assert ws.compress
            for message in ["Hello", "x" * 10_000]:
                await ws.send_str(message)
                reply = await ws.receive()
                assert reply.data == "this is an acknowledgement"

    asyncio.run(main())


def test_stream_example_with_websockets_client(stream_example: int) -> None:
    with connect(f"ws://127.0.0.1:{stream_example}/", compression="deflate", max_size=None) as ws:
        assert ws.protocol.extensions, "compression was not negotiated"
        for message in MESSAGES:
            ws.send(message)
            assert ws.recv() == message
        # A fragmented message, compressed across its fragments.
        ws.send(["frag", "mented ", "message"])
        assert ws.recv() == "fragmented message"


def test_stream_example_with_aiohttp_client(stream_example: int) -> None:
    async def main() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{stream_example}/", compress=15, max_msg_size=0
            ) as ws,
        ):
            assert ws.compress
            for message in MESSAGES:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)
                reply = await ws.receive()
                assert reply.data == message

    asyncio.run(main())


# -- wsio's client against websockets and aiohttp servers -----------------------------


def websockets_echo(ws: ServerConnection) -> None:
    for message in ws:
        ws.send(message)


@pytest.fixture(scope="module")
def websockets_server() -> Iterator[int]:
    with serve(websockets_echo, "127.0.0.1", 0, compression="deflate", max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join(10)


@pytest.fixture(scope="module")
def aiohttp_server() -> Iterator[int]:
    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


OFFERS = [
    wsflate.DEFAULT_PARAMETERS,
    Parameters(),
    Parameters(client_max_window_bits=True),
    Parameters(server_max_window_bits=10, client_max_window_bits=9),
    Parameters(client_no_context_takeover=True, client_max_window_bits=True),
]


def talk(port: int, offer: Parameters) -> Parameters:
    """Dial with ``offer``, send MESSAGES compressed, check the echoes; the agreement."""
    extension = wsflate.Extension(offer)
    dialer = wsio.Dialer(
        extensions=[extension.offer()], accept_extensions=extension.accept_extensions
    )
    conn, handshake = dialer.dial(f"ws://127.0.0.1:{port}/")
    agreed = extension.accepted()
    assert agreed is not None, handshake
    state = wsio.State.CLIENT_SIDE | wsio.State.EXTENDED
    try:
        send_state, recv_state = wsflate.MessageState(), wsflate.MessageState()
        writer = wsutil.Writer(conn, state, wsio.OpCode.TEXT)
        writer.set_extensions(send_state)
        reader = wsutil.Reader(conn, state, extensions=[recv_state], check_utf8=False)
        fw = wsflate.Writer(None, parameters=agreed, client=True, state=send_state)
        fr = wsflate.Reader(None, parameters=agreed, client=True, state=recv_state)
        for message in MESSAGES:
            data = message.encode() if isinstance(message, str) else message
            opcode = wsio.OpCode.TEXT if isinstance(message, str) else wsio.OpCode.BINARY
            writer.reset_op(opcode)
            fw.reset(writer)
            fw.write(data)
            fw.close()
            writer.flush()
            header = reader.next_frame()
            assert header.opcode == opcode
            fr.reset(reader)
            assert fr.read() == data
            # These servers compress everything they send back.
            assert recv_state.is_compressed()
        wsutil.write_close(conn, state, 1000)
        header = reader.next_frame()
        assert header.opcode == wsio.OpCode.CLOSE
    finally:
        conn.close()
    return agreed


@pytest.mark.parametrize("offer", OFFERS, ids=str)
def test_wsio_client_with_websockets_server(websockets_server: int, offer: Parameters) -> None:
    agreed = talk(websockets_server, offer)
    # websockets' server limits its own window to 12 bits by default.
    assert agreed.server_window_bits <= 12


@pytest.mark.parametrize("offer", OFFERS, ids=str)
def test_wsio_client_with_aiohttp_server(aiohttp_server: int, offer: Parameters) -> None:
    talk(aiohttp_server, offer)
