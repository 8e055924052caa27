"""wsutil.Writer and ControlWriter: frames on the wire, fragmentation, masking."""

from __future__ import annotations

import io
import shutil

import pytest

import wsio
from wsio import Header, OpCode, State, wsutil

SERVER = State.SERVER_SIDE
CLIENT = State.CLIENT_SIDE


class Recorder:
    """A sink that keeps each write separately, to count system calls."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def frames(self, state: State = State.CLIENT_SIDE) -> list[tuple[Header, bytes]]:
        stream = io.BytesIO(b"".join(self.writes))
        result = []
        while stream.tell() < len(stream.getvalue()):
            f = wsio.unmask_frame_in_place(wsio.read_frame(stream))
            result.append((f.header, bytes(f.payload)))
        return result


def test_one_write_per_frame() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.TEXT)
    writer.write(b"Hello")
    writer.flush()
    assert sink.writes == [bytes.fromhex("810548656c6c6f")]  # RFC 6455 §5.7


def test_full_buffer_goes_out_as_fragments() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.BINARY, buffer_size=4)
    writer.write(b"ab")
    writer.write(b"cdefgh")
    writer.write(b"ij")
    writer.flush()
    frames = sink.frames()
    assert [(h.opcode, h.fin, p) for h, p in frames] == [
        (2, False, b"abcd"),
        (0, False, b"efgh"),
        (0, True, b"ij"),
    ]


def test_flush_of_untouched_writer_sends_nothing() -> None:
    sink = Recorder()
    wsutil.Writer(sink, SERVER, OpCode.TEXT).flush()
    assert sink.writes == []


def test_flush_after_fragments_sends_an_empty_final_frame() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.TEXT, buffer_size=4)
    writer.write(b"abcd")
    writer.flush_fragment()
    writer.flush()
    assert [(h.opcode, h.fin, p) for h, p in sink.frames()] == [(1, False, b"abcd"), (0, True, b"")]


def test_written_but_empty_message_is_an_empty_frame() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.TEXT)
    writer.write(b"")
    writer.flush()
    assert sink.writes == [b"\x81\x00"]


def test_large_write_goes_through_without_the_buffer() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.BINARY, buffer_size=16)
    data = bytes(range(256)) * 40
    writer.write(data)
    writer.flush()
    frames = sink.frames()
    assert frames[0][1] == data and not frames[0][0].fin
    assert frames[-1][0].fin and b"".join(p for _, p in frames) == data


def test_client_masks_each_frame_with_a_fresh_key_and_keeps_the_data() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, CLIENT, OpCode.BINARY, buffer_size=8)
    data = bytearray(b"0123456789abcdefXYZ")
    writer.write(data)
    writer.flush()
    assert data == b"0123456789abcdefXYZ"
    raw = [wsio.read_frame(io.BytesIO(w)) for w in sink.writes]
    assert all(f.header.masked for f in raw)
    assert len({f.header.mask for f in raw}) == len(raw)
    assert b"".join(p for _, p in sink.frames()) == bytes(data)


def test_disable_flush_grows_instead_of_fragmenting() -> None:
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.TEXT, buffer_size=4)
    writer.disable_flush()
    writer.write(b"0123456789")
    assert sink.writes == [] and writer.buffered == 10 and writer.size >= 10
    writer.flush()
    assert [(h.fin, p) for h, p in sink.frames()] == [(True, b"0123456789")]


def test_reset_op_and_extensions() -> None:
    class SetRsv1OnFirst:
        def set_bits(self, header: Header) -> Header:
            if header.opcode != 0:
                header.rsv |= 4
            return header

    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER | State.EXTENDED, OpCode.TEXT, buffer_size=2)
    writer.set_extensions(SetRsv1OnFirst())
    writer.reset_op(OpCode.BINARY)
    writer.write(b"abcd")
    writer.flush()
    assert [(h.opcode, h.rsv, h.fin) for h, _ in sink.frames()] == [(2, 4, False), (0, 0, True)]
    writer.reset(sink, SERVER, OpCode.TEXT)  # clears extensions
    sink.writes.clear()
    writer.write(b"x")
    writer.flush()
    assert sink.frames()[0][0].rsv == 0


def test_sizes() -> None:
    writer = wsutil.Writer(Recorder(), SERVER, OpCode.TEXT, buffer_size=100)
    writer.write(b"x" * 30)
    assert (writer.size, writer.buffered, writer.available) == (100, 30, 70)
    writer.grow(500)
    assert writer.available >= 500 and writer.buffered == 30


def test_copyfileobj_from_reader_to_writer() -> None:
    # The seed's low-level echo: io.Copy(writer, reader).
    payload = bytes(range(256)) * 100
    wire = wsio.compile_frame(wsio.mask_frame(wsio.new_binary_frame(payload), b"abcd"))
    reader = wsutil.Reader(io.BytesIO(wire), SERVER)
    sink = Recorder()
    writer = wsutil.Writer(sink, SERVER, OpCode.TEXT)
    header = reader.next_frame()
    writer.reset(sink, SERVER, header.opcode)
    shutil.copyfileobj(reader, writer)
    writer.flush()
    frames = sink.frames()
    assert frames[0][0].opcode == OpCode.BINARY
    assert b"".join(p for _, p in frames) == payload


class TestControlWriter:
    def test_limit_across_calls(self) -> None:
        sink = Recorder()
        writer = wsutil.ControlWriter(sink, SERVER, OpCode.PING)
        writer.write(b"x" * 100)
        with pytest.raises(wsio.LocalProtocolError):
            writer.write(b"x" * 26)
        writer.write(b"x" * 25)
        writer.flush()
        assert sink.frames()[0][1] == b"x" * 125

    def test_empty(self) -> None:
        sink = Recorder()
        writer = wsutil.ControlWriter(sink, SERVER, OpCode.PONG)
        writer.flush()
        assert sink.writes == [b"\x8a\x00"]

    def test_data_opcode_refused(self) -> None:
        with pytest.raises(wsio.LocalProtocolError):
            wsutil.ControlWriter(Recorder(), SERVER, OpCode.TEXT)
