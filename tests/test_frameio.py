"""Frames read from and written to sockets and files."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest

import wsio
import wsio.wsutil


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def test_write_and_read_frame_over_a_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    frame = wsio.mask_frame_in_place(wsio.new_text_frame(b"Hello"), bytes.fromhex("37fa213d"))
    wsio.write_frame(a, frame)
    assert b.recv(100) == bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 §5.7
    wsio.write_frame(a, frame)
    received = wsio.read_frame(b)
    assert received.header == frame.header
    assert bytes(wsio.unmask_frame_in_place(received).payload) == b"Hello"


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 300_000])
def test_round_trip_lengths(length: int) -> None:
    stream = io.BytesIO()
    payload = bytes(range(256)) * (length // 256) + bytes(length % 256)
    wsio.write_frame(stream, wsio.new_binary_frame(payload))
    stream.seek(0)
    frame = wsio.read_frame(stream)
    assert frame.header.length == length and frame.payload == payload


def test_large_frame_over_a_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffer holds
    writer = threading.Thread(target=wsio.write_frame, args=(a, wsio.new_binary_frame(payload)))
    writer.start()
    frame = wsio.read_frame(b)
    writer.join()
    assert frame.payload == payload


def test_read_header_leaves_the_payload_in_the_stream() -> None:
    stream = io.BytesIO(bytes.fromhex("810548656c6c6f") + b"rest")
    header = wsio.read_header(stream)
    assert header == wsio.Header(opcode=1, length=5)
    assert stream.read() == b"Hellorest"


def test_read_header_into_reuses_header_and_scratch() -> None:
    stream = io.BytesIO(bytes.fromhex("818537fa213d7f9f4d5158") * 2)
    header = wsio.Header()
    scratch = bytearray(14)
    for _ in range(2):
        assert wsio.read_header_into(stream, header, scratch) is header
        assert header.mask == bytes.fromhex("37fa213d") and header.length == 5
        stream.read(5)


def test_write_header_is_one_write() -> None:
    writes: list[bytes] = []

    class Sink:
        def write(self, data: bytes | bytearray | memoryview, /) -> int:
            writes.append(bytes(data))
            return len(data)

    wsio.write_header(Sink(), wsio.Header(opcode=2, length=70000))
    assert writes == [bytes.fromhex("827f0000000000011170")]
    writes.clear()
    wsio.write_frame(Sink(), wsio.new_text_frame(b"Hello"))
    assert writes == [bytes.fromhex("810548656c6c6f")]


def test_clean_eof_and_unexpected_eof() -> None:
    with pytest.raises(wsio.ConnectionEOFError) as clean:
        wsio.read_header(io.BytesIO(b""))
    assert not isinstance(clean.value, wsio.UnexpectedEOFError)
    with pytest.raises(wsio.UnexpectedEOFError):
        wsio.read_header(io.BytesIO(b"\x81"))
    with pytest.raises(wsio.UnexpectedEOFError):
        wsio.read_header(io.BytesIO(b"\x81\xfe\x01"))
    with pytest.raises(wsio.UnexpectedEOFError, match="2 of 5"):
        wsio.read_frame(io.BytesIO(b"\x81\x05He"))


def test_declared_length_over_the_limit_reads_no_payload() -> None:
    # gobwas/ws #223: a header declaring 2**62 bytes must not allocate them.
    stream = io.BytesIO(bytes.fromhex("827f4000000000000000") + b"x" * 10)
    with pytest.raises(wsio.PayloadTooBigError) as info:
        wsio.read_frame(stream, max_frame_size=1024)
    assert info.value.close_code == 1009
    assert stream.read() == b"x" * 10


def test_top_bit_of_64_bit_length() -> None:
    with pytest.raises(wsio.ProtocolError):
        wsio.read_header(io.BytesIO(bytes.fromhex("827f8000000000000001")))


def test_slow_peer_sending_less_than_declared(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    a.sendall(bytes.fromhex("827f0000000001000000") + b"x" * 100)  # declares 16 MiB
    a.shutdown(socket.SHUT_WR)
    with pytest.raises(wsio.UnexpectedEOFError, match="100 of 16777216"):
        wsio.read_frame(b, max_frame_size=2**24)


def test_read_payload_after_read_header_keeps_the_limit() -> None:
    stream = io.BytesIO()
    wsio.write_frame(stream, wsio.new_binary_frame(bytes(300)))
    wsio.write_frame(stream, wsio.new_binary_frame(b"next"))
    stream.seek(0)
    header = wsio.read_header(stream)
    with pytest.raises(wsio.PayloadTooBigError):
        wsio.read_payload(stream, header, max_frame_size=299)
    assert stream.tell() == 4  # nothing of the payload was read
    assert wsio.read_payload(stream, header) == bytes(300)
    header = wsio.read_header(stream)
    assert wsio.read_payload(stream, header) == b"next"


def test_read_payload_of_a_declared_length_that_never_comes() -> None:
    # 1 GiB declared, 10 bytes sent: the answer is an EOF error, not a 1 GiB buffer.
    header = wsio.Header(True, 0, wsio.OpCode.BINARY, False, None, 2**30)
    with pytest.raises(wsio.UnexpectedEOFError, match="10 of 1073741824"):
        wsio.read_payload(io.BytesIO(bytes(10)), header, max_frame_size=2**31)


def test_locked_sink_writes_what_the_sink_would() -> None:
    plain, locked = io.BytesIO(), io.BytesIO()
    sink = wsio.LockedSink(locked)
    for payload in [b"", b"small", bytes(70_000)]:
        for target in (plain, sink):
            wsio.write_frame(target, wsio.new_binary_frame(payload))
            wsio.wsutil.write_client_message(target, wsio.OpCode.TEXT, payload)
    # Client frames carry random masks: compare what is not masked.
    assert len(locked.getvalue()) == len(plain.getvalue())
    locked.seek(0)
    frames = []
    while locked.tell() < len(locked.getvalue()):
        frames.append(wsio.unmask_frame_in_place(wsio.read_frame(locked)).payload)
    assert frames == [b"", b"", b"small", b"small", bytes(70_000), bytes(70_000)]


def test_locked_sink_lock_is_reentrant(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sink = wsio.LockedSink(a)
    with sink.lock:  # held around a message of several writes, as the docs say
        wsio.write_header(sink, wsio.Header(True, 0, wsio.OpCode.BINARY, False, None, 2))
        sink.sendall(b"ok")
        wsio.write_frame(sink, wsio.new_ping_frame(b"p"))
    assert wsio.read_frame(b).payload == b"ok"
    assert wsio.read_frame(b).header.opcode == wsio.OpCode.PING
