"""wsio.aio's own socket transport (the one its servers give each connection on
asyncio's selector loop) keeps asyncio's Transport contract: bytes in order however
much the peer lags, flow control with the water marks, EOF, pause/resume, the end of a
connection reported once, and a server's wait_closed that waits for its connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any

import pytest

from wsio import aio
from wsio.aio._socket import SocketTransport

HANG = 30.0  # a bound on a hang, never on how fast anything is


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, HANG))


class Recorder(asyncio.BufferedProtocol):
    """Keeps what it reads and every call the transport makes."""

    def __init__(self, eof_keeps_open: bool = False) -> None:
        self.buffer = bytearray(4096)
        self.received = bytearray()
        self.calls: list[str] = []
        self.eof_keeps_open = eof_keeps_open
        self.lost: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append("made")

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += self.buffer[:nbytes]

    def eof_received(self) -> bool:
        self.calls.append("eof")
        return self.eof_keeps_open

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append("lost")
        self.lost.set_result(exc)


def _pair(small: bool = False) -> tuple[socket.socket, socket.socket]:
    """A connected TCP pair on loopback: (the transport's side, the test's peer); with
    ``small``, both kernel buffers in between are small (a peer that lags is felt)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.socket()
        if small:
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(listener.getsockname())
        ours, _ = listener.accept()
    if small:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    peer.setblocking(False)
    return ours, peer


def _open(
    protocol: Recorder | None = None, small: bool = False
) -> tuple[SocketTransport, Recorder, socket.socket, socket.socket]:
    """A SocketTransport started on a fresh pair (see _pair): the transport, its protocol,
    its socket and the test's peer."""
    ours, peer = _pair(small)
    proto = protocol if protocol is not None else Recorder()
    transport = SocketTransport(asyncio.get_running_loop(), ours, proto, peer.getsockname())
    return transport, proto, ours, peer


async def _recv_until(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < size:
        chunk = await loop.sock_recv(peer, 1 << 20)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_a_lagging_peer_gets_every_byte_in_order_and_the_protocol_is_paused_and_resumed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto, ours, peer = _open(small=True)
        assert proto.calls == ["made"] and proto.transport is transport
        # Writes of every buffer type, far more than the socket takes at once; the
        # bytearray is changed after write returns (the transport kept its own copy).
        sent = bytearray()
        for i in range(64):
            chunk = bytearray([i % 251]) * 8192
            transport.write(
                chunk if i % 3 == 0 else bytes(chunk) if i % 3 == 1 else memoryview(chunk)
            )
            sent += chunk
            chunk[:] = b"\xff" * len(chunk)
        assert transport.get_write_buffer_size() > 64 * 1024
        assert proto.calls == ["made", "pause"]
        got = await _recv_until(peer, len(sent))
        assert got == sent
        while transport.get_write_buffer_size():
            await asyncio.sleep(0)
        assert proto.calls == ["made", "pause", "resume"]
        transport.close()
        assert await proto.lost is None
        assert await loop.sock_recv(peer, 10) == b""
        assert ours.fileno() == -1
        peer.close()

    run(main())


def test_close_sends_what_is_buffered_first_and_abort_drops_it() -> None:
    async def main() -> None:
        transport, proto, _ours, peer = _open()
        payload = b"z" * (4 << 20)
        transport.write(payload)
        transport.close()
        assert transport.is_closing()
        assert await _recv_until(peer, len(payload) + 1) == payload
        assert await proto.lost is None
        peer.close()

        transport, proto, _ours, peer = _open()
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        assert transport.get_write_buffer_size() == 0
        assert await proto.lost is None
        assert proto.calls.count("lost") == 1
        got = await _recv_until(peer, len(payload) + 1)
        assert len(got) < len(payload)
        peer.close()

    run(main())


def test_eof_closes_unless_the_protocol_keeps_the_connection_open_and_write_eof() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        _, proto, _ours, peer = _open()
        await loop.sock_sendall(peer, b"last words")
        peer.shutdown(socket.SHUT_WR)
        assert await proto.lost is None
        assert proto.received == b"last words"
        assert proto.calls == ["made", "eof", "lost"]
        peer.close()

        transport, proto, _ours, peer = _open(Recorder(eof_keeps_open=True))
        peer.shutdown(socket.SHUT_WR)
        while "eof" not in proto.calls:
            await asyncio.sleep(0.001)
        assert not transport.is_closing()
        transport.write(b"an answer after the peer's EOF")
        assert transport.can_write_eof()
        transport.write_eof()
        with pytest.raises(RuntimeError):
            transport.write(b"more")
        assert await _recv_until(peer, 1 << 20) == b"an answer after the peer's EOF"
        transport.close()
        assert await proto.lost is None
        peer.close()

    run(main())


def test_paused_reading_leaves_the_bytes_in_the_kernel_until_resumed() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto, _ours, peer = _open()
        transport.pause_reading()
        assert not transport.is_reading()
        await loop.sock_sendall(peer, b"held")
        await asyncio.sleep(0.05)
        assert proto.received == b""
        transport.resume_reading()
        assert transport.is_reading()
        while proto.received != b"held":
            await asyncio.sleep(0.001)
        transport.close()
        await proto.lost
        peer.close()

    run(main())


def test_a_reset_peer_and_a_failing_protocol_end_the_connection_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda loop, context: reported.append(context))

        _, proto, _ours, peer = _open()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()  # RST
        exc = await proto.lost
        assert isinstance(exc, ConnectionResetError)
        assert proto.calls.count("lost") == 1
        assert reported == []  # a peer's failure is no error of the program

        class Broken(Recorder):
            def buffer_updated(self, nbytes: int) -> None:
                raise ValueError("a bug in the protocol")

        _, proto, _ours, peer = _open(Broken())
        await loop.sock_sendall(peer, b"x")
        exc = await proto.lost
        assert isinstance(exc, ValueError)
        assert [type(context["exception"]) for context in reported] == [ValueError]
        peer.close()

    run(main())


def test_limits_extra_info_and_protocol() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, proto, ours, peer = _open()
        assert transport.get_write_buffer_limits() == (16384, 65536)
        transport.set_write_buffer_limits(high=1000)
        assert transport.get_write_buffer_limits() == (250, 1000)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        assert transport.get_extra_info("peername") == peer.getsockname()
        assert transport.get_extra_info("sockname") == ours.getsockname()
        assert transport.get_extra_info("socket").fileno() == ours.fileno()
        assert transport.get_extra_info("nothing", 42) == 42
        assert transport.get_protocol() is proto
        # The loop knows the descriptor is a transport's.
        with pytest.raises(RuntimeError):
            loop.add_reader(ours.fileno(), lambda: None)
        transport.close()
        await proto.lost
        peer.close()

    run(main())


class Echo(aio.Listener):
    def on_frame(self, transport: aio.Transport, frame: aio.Frame) -> None:
        transport.send(frame.opcode, frame.payload, frame.fin)


def test_a_server_connection_gets_it_and_wait_closed_waits_for_the_connections() -> None:
    # On asyncio's selector loop a plain server gives its connections this transport, and
    # a client its connection; the asyncio Server counts them (close() then wait_closed()
    # returns once the last one ended).
    async def main() -> None:
        seen: list[Any] = []

        class Seen(Echo):
            def on_connect(self, transport: aio.Transport) -> None:
                seen.append(transport.transport)

        server = await aio.create_server(Seen, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client, _ = await aio.create_connection(Echo, f"ws://127.0.0.1:{port}/")
        while not seen:
            await asyncio.sleep(0.001)
        assert type(seen[0]) is SocketTransport
        assert type(client.transport) is SocketTransport  # the client's side too
        # (Python 3.11's wait_closed waits only when called before close.)
        waiting = asyncio.ensure_future(server.wait_closed())
        await asyncio.sleep(0)
        server.close()
        await asyncio.sleep(0.05)
        assert not waiting.done()  # a connection is still open
        client.send_close(1000, "")
        await waiting
        assert seen[0].is_closing()

    run(main())
