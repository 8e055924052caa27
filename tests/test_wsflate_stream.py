"""wsflate.Reader and wsflate.Writer: alone, and on wsutil's Reader and Writer over a socket."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings, strategies as st

import wsio
from wsio import wsutil
from wsio.exceptions import InvalidUTF8Error, PayloadTooBigError
from wsio.wsflate import (
    DEFAULT_PARAMETERS,
    Compressor,
    MessageState,
    Parameters,
    Reader,
    Writer,
    decompress,
)

HELLO = bytes.fromhex("f248cdc9c90700")


class Pieces:
    """A message source that gives its payload in pieces, b"" at the end."""

    def __init__(self, payload: bytes, size: int = 3) -> None:
        self.chunks = [payload[i : i + size] for i in range(0, len(payload), size)]

    def read(self, n: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.data += data
        self.writes += 1
        return len(data)


def test_reader_alone() -> None:
    reader = Reader(Pieces(HELLO))
    assert reader.readable()
    assert reader.read(2) == b"He"
    buffer = bytearray(10)
    assert reader.readinto(buffer) == 3 and buffer[:3] == b"llo"
    assert reader.read() == b""
    assert reader.read(0) == b""
    reader.reset(Pieces(HELLO, 1))
    assert reader.readall() == b"Hello"
    with pytest.raises(ValueError):
        Reader(None).read()


def test_writer_alone() -> None:
    sink = Sink()
    writer = Writer(sink)
    assert writer.writable()
    writer.write(b"Hel")
    writer.write(memoryview(b"lo"))
    writer.close()
    assert bytes(sink.data) == HELLO
    writer.close()  # a second close adds nothing
    assert bytes(sink.data) == HELLO
    with pytest.raises(ValueError):
        writer.write(b"x")
    orphan = Writer(None)
    orphan.write(b"x")
    with pytest.raises(ValueError):
        orphan.close()


@settings(max_examples=40, deadline=None)
@given(
    messages=st.lists(st.binary(max_size=5000), max_size=5),
    bits=st.integers(8, 15),
    takeover=st.booleans(),
    piece=st.integers(1, 600),
    flush_every=st.integers(0, 3),
)
def test_writer_reader_round_trip(
    messages: list[bytes], bits: int, takeover: bool, piece: int, flush_every: int
) -> None:
    params = Parameters(
        server_no_context_takeover=not takeover,
        client_no_context_takeover=not takeover,
        server_max_window_bits=bits,
        client_max_window_bits=bits,
    )
    writer = Writer(None, parameters=params)  # the server compresses ...
    reader = Reader(None, parameters=params, client=True)  # ... the client inflates
    for message in messages:
        sink = Sink()
        writer.reset(sink)
        for i, start in enumerate(range(0, len(message), piece)):
            writer.write(message[start : start + piece])
            if flush_every and i % flush_every == 0:
                writer.flush()
        writer.close()
        reader.reset(Pieces(bytes(sink.data), piece))
        out = bytearray()
        while chunk := reader.read(piece):
            out += chunk
        assert out == message


def test_sides_use_their_half_of_the_agreement() -> None:
    params = Parameters(server_max_window_bits=9, client_no_context_takeover=True)
    assert Writer(None, parameters=params).compressor.window_bits == 9
    assert not Writer(None, parameters=params).compressor.no_context_takeover
    assert Writer(None, parameters=params, client=True).compressor.window_bits == 15
    assert Writer(None, parameters=params, client=True).compressor.no_context_takeover
    assert Reader(None, parameters=params).decompressor.no_context_takeover
    assert Reader(None, parameters=params, client=True).decompressor.window_bits == 9


def test_reader_limit_across_many_pieces() -> None:
    # Reliability case 51: a bomb spread over 1000 small pieces ends in 1009 on the
    # cumulative decompressed size.
    payload = Compressor().compress_message(bytes(5_000_000))
    reader = Reader(Pieces(payload, max(1, len(payload) // 1000)), max_message_size=1 << 20)
    total = 0
    with pytest.raises(PayloadTooBigError):
        while chunk := reader.read(65536):
            total += len(chunk)
    assert total <= 1 << 20


def test_threshold_and_per_message_choice() -> None:
    state = MessageState()
    sink = Sink()
    writer = Writer(sink, state=state, threshold=100)
    # Below the threshold: sent as is, RSV1 clear.
    writer.write(b"short")
    assert sink.data == b""  # held until decided
    writer.close()
    assert bytes(sink.data) == b"short" and not state.compressed
    # At the threshold: compressed, RSV1 set before the first byte goes out.
    sink2 = Sink()
    writer.reset(sink2)
    assert not state.compressed
    writer.write(b"a" * 60)
    writer.write(b"a" * 60)
    assert state.is_compressed()  # a call: mypy would keep `not state.compressed` above
    writer.close()
    assert decompress(bytes(sink2.data)) == b"a" * 120
    # RFC 7692 §8: a message with secrets can be sent uncompressed on request.
    sink3 = Sink()
    writer.reset(sink3, compress=False)
    writer.write(b"secret" * 100)
    writer.close()
    assert not state.compressed and bytes(sink3.data) == b"secret" * 100
    with pytest.raises(ValueError):
        Writer(None, threshold=10)


def test_reader_passes_uncompressed_messages_through() -> None:
    state = MessageState()
    state.compressed = False
    reader = Reader(Pieces(b"plain text"), state=state)
    assert reader.read() == b"plain text"


# -- over wsutil and a socket --------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


def run(target: Callable[[], None]) -> Callable[[], None]:
    errors: list[BaseException] = []

    def wrapped() -> None:
        try:
            target()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    thread = threading.Thread(target=wrapped)
    thread.start()

    def join() -> None:
        thread.join(30)
        assert not thread.is_alive()
        if errors:
            raise errors[0]

    return join


CLIENT = wsio.State.CLIENT_SIDE | wsio.State.EXTENDED
SERVER = wsio.State.SERVER_SIDE | wsio.State.EXTENDED


@pytest.mark.parametrize(
    "params", [DEFAULT_PARAMETERS, Parameters(), Parameters(False, False, 9, 10)]
)
def test_client_to_server_over_wsutil(
    pair: tuple[socket.socket, socket.socket], params: Parameters
) -> None:
    client_sock, server_sock = pair
    messages = [
        (wsio.OpCode.TEXT, "héllo wörld ".encode() * 1000),
        (wsio.OpCode.BINARY, os.urandom(3000) * 4),
        (wsio.OpCode.TEXT, b""),
        (wsio.OpCode.BINARY, bytes(100_000)),
        (wsio.OpCode.TEXT, b"Hello"),
    ]

    def client() -> None:
        state = MessageState()
        frames = wsutil.Writer(client_sock, CLIENT, wsio.OpCode.TEXT, buffer_size=1000)
        frames.set_extensions(state)
        deflate = Writer(None, parameters=params, client=True, state=state)
        for opcode, payload in messages:
            frames.reset_op(opcode)
            deflate.reset(frames)
            for start in range(0, len(payload), 7000):
                deflate.write(payload[start : start + 7000])
            deflate.close()
            frames.flush()

    join = run(client)
    state = MessageState()
    # wsutil checks UTF-8 on the wire; for compressed text wsflate.Reader checks it.
    frames = wsutil.Reader(server_sock, SERVER, extensions=[state], check_utf8=False)
    inflate = Reader(None, parameters=params, state=state)
    for opcode, payload in messages:
        header = frames.next_frame()
        assert header.opcode == opcode and header.rsv == 0
        assert state.is_compressed()
        inflate.reset(frames)
        assert inflate.read() == payload
    join()


def test_seed_echo_loop_over_wsutil(pair: tuple[socket.socket, socket.socket]) -> None:
    # The shape of the seed's second wsflate example: a server echoes compressed
    # messages with Reader/Writer and one MessageState, context taken over.
    client_sock, server_sock = pair
    params = Parameters()
    sent = [b"Hello", b"Hello", os.urandom(5000), b"x" * 70000, b""]

    def server() -> None:
        msg = MessageState()
        rd = wsutil.Reader(server_sock, SERVER, extensions=[msg], check_utf8=False)
        wr = wsutil.Writer(server_sock, SERVER, 0)
        wr.set_extensions(msg)
        fr = Reader(None, parameters=params, state=msg)
        fw = Writer(None, parameters=params, level=9)
        for _ in sent:
            h = rd.next_frame()
            wr.reset_op(h.opcode)
            fr.reset(rd)
            fw.reset(wr)
            while chunk := fr.read(16384):
                fw.write(chunk)
            fw.close()
            wr.flush()

    join = run(server)
    cstate = MessageState()
    writer = wsutil.Writer(client_sock, CLIENT, wsio.OpCode.BINARY)
    writer.set_extensions(cstate)
    reader = wsutil.Reader(client_sock, CLIENT, extensions=[cstate], check_utf8=False)
    fw = Writer(None, parameters=params, client=True, state=cstate)
    fr = Reader(None, parameters=params, client=True, state=cstate)
    for payload in sent:
        writer.reset_op(wsio.OpCode.BINARY)
        fw.reset(writer)
        fw.write(payload)
        fw.close()
        writer.flush()
        reader.next_frame()
        assert cstate.is_compressed()
        fr.reset(reader)
        assert fr.read() == payload
    join()


def test_rsv1_on_the_wire_first_frame_only(pair: tuple[socket.socket, socket.socket]) -> None:
    client_sock, server_sock = pair
    state = MessageState()
    frames = wsutil.Writer(client_sock, CLIENT, wsio.OpCode.BINARY, buffer_size=64)
    frames.set_extensions(state)
    deflate = Writer(frames, client=True, state=state)
    for _ in range(4):
        deflate.write(os.urandom(100))
        deflate.flush()
    deflate.close()
    frames.flush()
    client_sock.shutdown(socket.SHUT_WR)
    seen = []
    while True:
        try:
            frame = wsio.read_frame(server_sock)
        except wsio.ConnectionEOFError:
            break
        seen.append((frame.header.opcode, frame.header.rsv, frame.header.fin))
    assert len(seen) > 2
    assert seen[0] == (wsio.OpCode.BINARY, 0b100, False)
    assert all(rsv == 0 and opcode == 0 for opcode, rsv, _ in seen[1:])
    assert seen[-1][2]


def test_compressed_text_checked_after_inflating(pair: tuple[socket.socket, socket.socket]) -> None:
    client_sock, server_sock = pair
    state = MessageState()
    frames = wsutil.Writer(client_sock, CLIENT, wsio.OpCode.TEXT)
    frames.set_extensions(state)
    deflate = Writer(frames, client=True, state=state)
    deflate.write("ok €".encode() + b"\xff")
    deflate.close()
    frames.flush()
    rstate = MessageState()
    reader = wsutil.Reader(server_sock, SERVER, extensions=[rstate], check_utf8=False)
    reader.next_frame()
    inflate = Reader(reader, state=rstate)
    with pytest.raises(InvalidUTF8Error) as info:
        inflate.read()
    assert info.value.close_code == 1007


def test_default_parameters_hold_nothing_between_messages() -> None:
    # Without context takeover an idle connection keeps no zlib state: the compressor
    # went back to the pool, the decompressor was dropped (bench/compression.py
    # measures the memory).
    sink = Sink()
    writer = Writer(sink)
    writer.write(b"Hello" * 100)
    writer.close()
    reader = Reader(Pieces(bytes(sink.data)))
    assert reader.read() == b"Hello" * 100
    assert writer.compressor._obj is None
    assert reader.decompressor._obj is None
    # With takeover both keep their window for the next message.
    params = Parameters()
    writer = Writer(Sink(), parameters=params)
    writer.write(b"Hello")
    writer.close()
    assert writer.compressor._obj is not None
