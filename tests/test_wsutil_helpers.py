"""The one-call helpers against a real peer: every size class of frame both ways, and
exact reads that leave the stream at the end of the message."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection, serve

import wsio
from wsio import OpCode, wsutil

# Around each length encoding (RFC 6455 §5.2: 7-bit, 16-bit, 64-bit), the helpers'
# one-write limit (64 KiB) and the client's masking chunk (256 KiB).
SIZES = [0, 1, 125, 126, 65535, 65536, 65537, (1 << 18) + 3, 3 << 20]


@pytest.fixture(scope="module")
def websockets_echo() -> Iterator[str]:
    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        server.shutdown()


def test_client_helpers_round_trip_every_size(websockets_echo: str) -> None:
    conn, _ = wsio.Dialer(proxy=None).dial(websockets_echo)
    with conn:
        for size in SIZES:
            payload = os.urandom(size)
            original = bytes(payload)
            wsutil.write_client_message(conn, OpCode.BINARY, bytearray(payload))
            assert payload == original  # the client masked a copy
            assert wsutil.read_server_data(conn) == (payload, OpCode.BINARY)
        wsutil.write_client_text(conn, "é".encode() * 100_000)
        assert wsutil.read_server_text(conn) == "é".encode() * 100_000


def test_server_helpers_round_trip_every_size() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            try:
                while True:
                    payload, op = wsutil.read_client_data(sock)
                    wsutil.write_server_message(sock, op, memoryview(payload))
            except wsio.ConnectionClosed:
                pass

    thread = threading.Thread(target=serve_one)
    thread.start()
    with listener, ws_connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None) as ws:
        for size in SIZES:
            payload = os.urandom(size)
            ws.send(payload)
            assert ws.recv() == payload
    thread.join(10)
    assert not thread.is_alive()


def test_reads_stop_at_the_end_of_the_message() -> None:
    # Two short messages and raw bytes after them arrive together: each helper call
    # takes its own message, and what follows is still on the socket.
    a, b = socket.socketpair()
    with a, b:
        wire = bytearray()
        for payload in (b"one", b"two" * 50):
            wire += wsio.compile_frame(
                wsio.Frame(wsio.Header(opcode=OpCode.BINARY, length=len(payload)), payload)
            )
        b.sendall(bytes(wire) + b"after")
        assert wsutil.read_server_data(a) == (b"one", OpCode.BINARY)
        assert wsutil.read_server_binary(a) == b"two" * 50
        assert a.recv(16) == b"after"


def test_bad_utf8_fails_before_the_rest_of_a_short_frame_arrives() -> None:
    # RFC 6455 §8.1 (Autobahn 6.4.3/6.4.4): invalid text fails the connection as soon
    # as it is seen, without waiting for the rest of the frame; the peer gets 1007.
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(10)  # a hang becomes a timeout, not a stuck test
        b.sendall(bytes((0x81, 20)) + b"ok \xf4\x90\x80\x80")  # 7 of 20 payload bytes
        with pytest.raises(wsio.InvalidUTF8Error):
            wsutil.read_server_data(a)
        close = b.recv(16)  # a masked Close frame with the 2-byte code
        assert close[:2] == bytes((0x88, 0x82))
        code = bytes(byte ^ key for byte, key in zip(close[6:8], close[2:4], strict=True))
        assert int.from_bytes(code, "big") == 1007


# -- the one-frame fast path: the same semantics whatever the stream ----------------------


def _frame(first: int, payload: bytes, key: bytes | None = b"\x0f\xa5\x3c\x81") -> bytes:
    """A frame's bytes (RFC 6455 §5.2): ``first`` is FIN/RSV/opcode, masked with ``key``."""
    n = len(payload)
    mask_bit = 0x80 if key is not None else 0
    if n < 126:
        head = bytes((first, mask_bit | n))
    elif n < 65536:
        head = bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def _close_code(data: bytes) -> int:
    """The code of the unmasked Close frame a server sent, at the start of ``data``."""
    assert data[0] == 0x88
    return int.from_bytes(data[2:4], "big")


# Three kinds of stream: a plain socket (read through its descriptor), one with a
# timeout (the socket's own calls wait), and a Conn whose read-ahead holds the start.
STREAMS = ["socket", "timeout", "conn"]


def _reading_end(kind: str, sock: socket.socket, wire: bytes) -> tuple[object, bytes]:
    # The stream to read ``wire`` from, and the bytes still to send on the socket.
    if kind == "timeout":
        sock.settimeout(10)
    if kind == "conn":
        return wsio.Conn(sock, wire[:3]), wire[3:]
    return sock, wire


@pytest.mark.parametrize("kind", STREAMS)
def test_server_reads_every_size_exactly(kind: str) -> None:
    sizes = [0, 1, 125, 126, 65535, 65536, 300_000]
    wire = b"".join(_frame(0x82 if i % 2 else 0x81, b"x" * size) for i, size in enumerate(sizes))
    a, b = socket.socketpair()
    with a, b:
        stream, rest = _reading_end(kind, a, wire)
        sender = threading.Thread(target=b.sendall, args=(rest + b"after",))
        sender.start()
        for i, size in enumerate(sizes):
            op = OpCode.BINARY if i % 2 else OpCode.TEXT
            assert wsutil.read_client_data(stream) == (b"x" * size, op)  # type: ignore[arg-type]
        sender.join()
        assert a.recv(16) == b"after"


def test_header_and_payload_arriving_byte_by_byte() -> None:
    # Every split of the header and payload across reads gives the same message.
    wire = _frame(0x82, bytes(range(200))) + _frame(0x81, "é".encode() * 10)
    a, b = socket.socketpair()
    with a, b:

        def trickle() -> None:
            for i in range(len(wire)):
                b.sendall(wire[i : i + 1])
                time.sleep(0.001)

        sender = threading.Thread(target=trickle)
        sender.start()
        assert wsutil.read_client_data(a) == (bytes(range(200)), OpCode.BINARY)
        assert wsutil.read_client_text(a) == "é".encode() * 10
        sender.join()


@pytest.mark.parametrize("kind", STREAMS)
def test_message_over_the_limit_is_refused_with_1009(kind: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        stream, rest = _reading_end(kind, a, _frame(0x82, b"y" * 1000))
        b.sendall(rest)
        with pytest.raises(wsio.PayloadTooBigError):
            wsutil.read_data(stream, wsio.State.SERVER_SIDE, max_message_size=999)  # type: ignore[arg-type]
        assert _close_code(b.recv(16)) == 1009


@pytest.mark.parametrize("kind", STREAMS)
def test_bad_utf8_in_a_long_text_message_is_refused_with_1007(kind: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        stream, rest = _reading_end(kind, a, _frame(0x81, b"a" * 70_000 + b"\xff"))
        sender = threading.Thread(target=b.sendall, args=(rest,))
        sender.start()
        with pytest.raises(wsio.InvalidUTF8Error):
            wsutil.read_client_data(stream)  # type: ignore[arg-type]
        sender.join()
        assert _close_code(b.recv(16)) == 1007


@pytest.mark.parametrize("kind", STREAMS)
def test_ping_then_message_then_close(kind: str) -> None:
    wire = (
        _frame(0x89, b"hi")
        + _frame(0x82, b"data")
        + _frame(0x88, (1000).to_bytes(2, "big") + b"bye")
    )
    a, b = socket.socketpair()
    with a, b:
        stream, rest = _reading_end(kind, a, wire)
        b.sendall(rest)
        assert wsutil.read_client_data(stream) == (b"data", OpCode.BINARY)  # type: ignore[arg-type]
        assert b.recv(16) == b"\x8a\x02hi"  # the pong
        with pytest.raises(wsio.ConnectionClosed):
            wsutil.read_client_data(stream)  # type: ignore[arg-type]
        assert b.recv(16) == b"\x88\x05\x03\xe8bye"  # the close, echoed


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (_frame(0x82, b"abcdef", key=None), 1002),  # RFC 6455 §5.1: a client masks
        (_frame(0xC2, b"abcdef"), 1002),  # RSV1 with no extension
        (_frame(0x83, b"abcdef"), 1002),  # a reserved opcode
        (_frame(0x00, b"abcdef"), 1002),  # a continuation with no message begun
    ],
)
def test_frames_off_the_fast_path_fail_as_before(wire: bytes, code: int) -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(wire)
        with pytest.raises(wsio.ProtocolError):
            wsutil.read_client_data(a)
        assert _close_code(b.recv(16)) == code


def test_fragmented_message_after_a_whole_one() -> None:
    wire = (
        _frame(0x82, b"one")
        + _frame(0x01, b"fra")
        + _frame(0x89, b"")
        + _frame(0x80, b"gment")
        + _frame(0x82, b"two")
    )
    a, b = socket.socketpair()
    with a, b:
        b.sendall(wire)
        assert wsutil.read_client_data(a) == (b"one", OpCode.BINARY)
        assert wsutil.read_client_data(a) == (b"fragment", OpCode.TEXT)
        assert wsutil.read_client_data(a) == (b"two", OpCode.BINARY)
        assert b.recv(16) == b"\x8a\x00"  # the pong for the ping in the middle


def test_end_of_stream_before_and_inside_a_message() -> None:
    a, b = socket.socketpair()
    with a:
        b.close()
        with pytest.raises(wsio.ConnectionEOFError) as clean:
            wsutil.read_client_data(a)
        assert type(clean.value) is wsio.ConnectionEOFError
    a, b = socket.socketpair()
    with a:
        b.sendall(_frame(0x82, b"z" * 300)[:100])
        b.close()
        with pytest.raises(wsio.UnexpectedEOFError):
            wsutil.read_client_data(a)


def test_a_socket_timeout_still_applies() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)
        with pytest.raises(TimeoutError):
            wsutil.read_client_data(a)
        b.sendall(_frame(0x82, b"p" * 500)[:50])  # the header and part of the payload
        with pytest.raises(TimeoutError):
            wsutil.read_client_data(a)


class _Alarm(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no interval timers")
def test_signals_during_a_blocked_read_behave_as_in_socket() -> None:
    # PEP 475: a handler that returns lets the read go on; one that raises ends it.
    seen: list[int] = []

    def note(signum: int, frame: object) -> None:
        seen.append(signum)

    def fail(signum: int, frame: object) -> None:
        raise _Alarm

    previous = signal.getsignal(signal.SIGALRM)
    a, b = socket.socketpair()
    try:
        with a, b:
            signal.signal(signal.SIGALRM, note)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            sender = threading.Timer(0.3, b.sendall, args=(_frame(0x82, b"late"),))
            sender.start()
            assert wsutil.read_client_data(a) == (b"late", OpCode.BINARY)
            sender.join()
            assert seen == [signal.SIGALRM]
            signal.signal(signal.SIGALRM, fail)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(_Alarm):
                wsutil.read_client_data(a)
            b.sendall(_frame(0x81, b"next"))
            assert wsutil.read_client_data(a) == (b"next", OpCode.TEXT)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
