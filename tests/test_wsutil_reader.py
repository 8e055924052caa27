"""wsutil.Reader: messages across fragments, control frames in between, limits, EOF."""

from __future__ import annotations

import io
import json
import socket
import threading
from typing import TypedDict

import pytest

import wsio
from wsio import Header, OpCode, State, wsutil
from wsio.protocol import BinaryMessage, ServerProtocol, TextMessage

SERVER = State.SERVER_SIDE
CLIENT = State.CLIENT_SIDE


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    """A frame as a client sends it (masked) unless mask=False."""
    f = wsio.Frame(Header(fin=fin, rsv=rsv, opcode=opcode, length=len(payload)), payload)
    if mask:
        f = wsio.mask_frame(f, b"\x11\x22\x33\x44")
    return wsio.compile_frame(f)


FRAGMENTED_WITH_PING = (
    frame(1, b"foo", fin=False)
    + frame(9, b"ping!")
    + frame(0, b"bar", fin=False)
    + frame(10, b"pong")
    + frame(0, b"baz")
)


@pytest.fixture(params=[0, 256, 65536], ids=["exact", "small-buffer", "default"])
def buffer_size(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_message_across_fragments_with_control_frames(buffer_size: int) -> None:
    seen: list[tuple[int, bytes]] = []
    reader = wsutil.Reader(
        io.BytesIO(FRAGMENTED_WITH_PING),
        SERVER,
        on_intermediate=lambda h, p: seen.append((h.opcode, bytes(p))),
        buffer_size=buffer_size,
    )
    header = reader.next_frame()
    assert header.opcode == OpCode.TEXT and not header.fin
    assert reader.read() == b"foobarbaz"
    assert seen == [(9, b"ping!"), (10, b"pong")]
    assert reader.read() == b""  # the end of the message, again


def test_byte_at_a_time_over_a_socket(buffer_size: int) -> None:
    a, b = socket.socketpair()
    data = FRAGMENTED_WITH_PING + frame(2, bytes(range(256)) * 300)

    def drip() -> None:
        for i in range(0, len(data), 97):
            a.sendall(data[i : i + 97])

    thread = threading.Thread(target=drip)
    thread.start()
    with a, b:
        reader = wsutil.Reader(b, SERVER, buffer_size=buffer_size)
        reader.next_frame()
        assert reader.read() == b"foobarbaz"
        assert reader.next_frame().opcode == OpCode.BINARY
        chunks = list(reader)
        assert b"".join(chunks) == bytes(range(256)) * 300
        thread.join()


def test_readinto_a_large_buffer_reads_straight_from_the_source() -> None:
    payload = bytes(range(256)) * 1024
    reader = wsutil.Reader(io.BytesIO(frame(2, payload)), SERVER, buffer_size=1024)
    reader.next_frame()
    target = bytearray(len(payload))
    view = memoryview(target)
    filled = 0
    while n := reader.readinto(view[filled:]):
        filled += n
    assert target == payload


def test_control_frame_between_messages_is_returned() -> None:
    reader = wsutil.Reader(io.BytesIO(frame(9, b"hi") + frame(1, b"x")), SERVER)
    header = reader.next_frame()
    assert header.opcode == OpCode.PING and reader.read() == b"hi"
    assert reader.next_frame().opcode == OpCode.TEXT and reader.read() == b"x"


def test_read_without_next_frame() -> None:
    reader = wsutil.Reader(io.BytesIO(frame(1, b"x")), SERVER)
    with pytest.raises(wsio.LocalProtocolError):
        reader.read()


def test_unread_payload_is_skipped_by_next_frame() -> None:
    reader = wsutil.Reader(io.BytesIO(frame(1, b"abcdef") + frame(2, b"next")), SERVER)
    reader.next_frame()
    assert reader.read(2) == b"ab"
    assert reader.next_frame().opcode == OpCode.BINARY and reader.read() == b"next"


def test_discard_skips_all_fragments() -> None:
    stream = frame(1, b"foo", fin=False) + frame(0, b"bar") + frame(2, b"after")
    reader = wsutil.Reader(io.BytesIO(stream), SERVER)
    reader.next_frame()
    reader.discard()
    assert reader.next_frame().opcode == OpCode.BINARY and reader.read() == b"after"


def test_json_message_as_a_stream() -> None:
    stream = frame(1, b'{"a": [1, ', fin=False) + frame(0, b"2]}")
    reader = wsutil.Reader(io.BytesIO(stream), SERVER)
    reader.next_frame()
    assert json.load(reader) == {"a": [1, 2]}


class TestEOF:
    def test_clean_eof_between_messages(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"x")), SERVER)
        reader.next_frame()
        reader.read()
        with pytest.raises(wsio.ConnectionEOFError) as info:
            reader.next_frame()
        assert not isinstance(info.value, wsio.UnexpectedEOFError)

    def test_eof_in_a_payload(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"abcdef")[:-2]), SERVER)
        reader.next_frame()
        with pytest.raises(wsio.UnexpectedEOFError):
            reader.read()

    def test_eof_in_a_fragmented_message(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"abc", fin=False)), SERVER)
        reader.next_frame()
        with pytest.raises(wsio.UnexpectedEOFError):
            reader.read()


class TestLimits:
    def test_frame_over_max_frame_size(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(2, bytes(101))), SERVER, max_frame_size=100)
        with pytest.raises(wsio.PayloadTooBigError) as info:
            reader.next_frame()
        assert info.value.close_code == 1009

    def test_message_over_max_message_size_across_fragments(self) -> None:
        stream = b"".join(frame(0 if i else 2, bytes(40), fin=False) for i in range(3))
        reader = wsutil.Reader(io.BytesIO(stream), SERVER, max_message_size=100)
        reader.next_frame()
        with pytest.raises(wsio.PayloadTooBigError):
            reader.read()

    def test_too_many_fragments(self) -> None:
        stream = frame(2, b"", fin=False) + frame(0, b"", fin=False) * 10
        reader = wsutil.Reader(io.BytesIO(stream), SERVER, max_fragments=5)
        reader.next_frame()
        with pytest.raises(wsio.PayloadTooBigError, match="frames"):
            reader.read()

    def test_declared_length_is_refused_before_reading(self) -> None:
        head = bytes.fromhex("82ff") + (2**40).to_bytes(8, "big") + b"\x00" * 4
        reader = wsutil.Reader(io.BytesIO(head), SERVER)
        with pytest.raises(wsio.PayloadTooBigError):
            reader.next_frame()


class TestUTF8:
    def test_invalid_in_the_first_fragment_fails_fast(self) -> None:
        stream = frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80", fin=False)
        reader = wsutil.Reader(io.BytesIO(stream), SERVER)  # no more fragments ever come
        reader.next_frame()
        with pytest.raises(wsio.InvalidUTF8Error) as info:
            reader.read()
        assert info.value.close_code == 1007

    def test_character_split_across_fragments(self) -> None:
        text = "κόσμε🎉".encode()
        stream = b"".join(
            frame(1 if i == 0 else 0, text[i : i + 1], fin=i == len(text) - 1)
            for i in range(len(text))
        )
        reader = wsutil.Reader(io.BytesIO(stream), SERVER)
        reader.next_frame()
        assert reader.read().decode() == "κόσμε🎉"

    def test_message_ending_inside_a_character(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"ok\xe2\x82")), SERVER)
        reader.next_frame()
        with pytest.raises(wsio.InvalidUTF8Error):
            reader.read()

    def test_binary_is_not_checked(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(2, b"\xff\xfe")), SERVER)
        reader.next_frame()
        assert reader.read() == b"\xff\xfe"

    def test_check_utf8_off(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"\xff")), SERVER, check_utf8=False)
        reader.next_frame()
        assert reader.read() == b"\xff"


class TestHeaderChecks:
    def test_unmasked_client_frame(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"x", mask=False)), SERVER)
        with pytest.raises(wsio.ProtocolError, match="not masked"):
            reader.next_frame()

    def test_client_side_reads_unmasked(self) -> None:
        reader = wsutil.Reader(io.BytesIO(frame(1, b"x", mask=False)), CLIENT)
        reader.next_frame()
        assert reader.read() == b"x"

    def test_skip_header_check(self) -> None:
        reader = wsutil.Reader(
            io.BytesIO(frame(1, b"x", mask=False)), SERVER, skip_header_check=True
        )
        reader.next_frame()
        assert reader.read() == b"x"

    def test_extension_clears_rsv_bits(self) -> None:
        class ClearRsv1:
            def unset_bits(self, header: Header) -> Header:
                header.rsv &= ~4
                return header

        reader = wsutil.Reader(
            io.BytesIO(frame(1, b"x", rsv=4)),
            SERVER | State.EXTENDED,
            extensions=[ClearRsv1()],
        )
        assert reader.next_frame().rsv == 0

    def test_continuation_hook(self) -> None:
        seen: list[int] = []
        stream = frame(1, b"a", fin=False) + frame(0, b"b")
        reader = wsutil.Reader(
            io.BytesIO(stream), SERVER, on_continuation=lambda h: seen.append(h.length)
        )
        reader.next_frame()
        assert reader.read() == b"ab" and seen == [1]


def test_take_buffered_hands_over_read_ahead() -> None:
    stream = io.BytesIO(frame(1, b"first") + frame(1, b"second"))
    reader = wsutil.Reader(stream, SERVER)
    reader.next_frame()
    assert reader.read() == b"first"
    rest = reader.take_buffered()
    assert rest == frame(1, b"second")


def test_next_reader_reads_nothing_ahead() -> None:
    stream = io.BytesIO(frame(1, b"first") + b"tail")
    header, reader = wsutil.next_reader(stream, SERVER)
    assert header.opcode == OpCode.TEXT and reader.read() == b"first"
    assert stream.read() == b"tail"


def test_utf8_is_not_checked_on_an_extension_encoded_message() -> None:
    class ClearRsv1:
        def unset_bits(self, header: Header) -> Header:
            header.rsv &= ~4
            return header

    stream = frame(1, b"\xff\xfe", rsv=4) + frame(1, b"\xff")
    reader = wsutil.Reader(io.BytesIO(stream), SERVER | State.EXTENDED, extensions=[ClearRsv1()])
    reader.next_frame()
    assert reader.read() == b"\xff\xfe"  # compressed bytes: the extension checks the text
    reader.next_frame()
    with pytest.raises(wsio.InvalidUTF8Error):
        reader.read()  # a plain text message is still checked


def test_many_tiny_fragments_cost_their_size_not_their_count() -> None:
    import tracemalloc

    count = 20000
    stream = frame(2, b"x", fin=False) + frame(0, b"x", fin=False) * (count - 2) + frame(0, b"x")
    reader = wsutil.Reader(io.BytesIO(stream), SERVER)
    reader.next_frame()
    tracemalloc.start()
    try:
        payload = reader.readall()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert payload == b"x" * count
    assert peak < 8 * count  # one object per fragment would cost ~35 bytes each


# The Reader and the protocol core take each message rule from one place
# (wsio._engine.message): the same hostile message gets the same answer from both.
class _Limits(TypedDict, total=False):
    max_message_size: int
    max_fragments: int


SAME_RULES: list[tuple[bytes, _Limits, str | bytes | int]] = [
    # (wire, limits, the message, or the close code that answers it)
    (frame(1, b"\xc3", fin=False) + frame(0, b"\xa9"), {}, "é"),
    (frame(1, b"ok", fin=False) + frame(0, b"\xff"), {}, 1007),
    (frame(1, b"a\xc3"), {}, 1007),
    (frame(1, b"a", fin=False) + frame(0, b"\xe2\x82"), {}, 1007),
    (frame(1, b"abc", fin=False) + frame(0, b"de"), {"max_message_size": 4}, 1009),
    (
        frame(2, b"a", fin=False) + frame(0, b"b", fin=False) + frame(0, b"c"),
        {"max_fragments": 2},
        1009,
    ),
    (
        frame(2, b"a", fin=False) + frame(0, b"b", fin=False) + frame(0, b"c"),
        {"max_fragments": 3},
        b"abc",
    ),
]


@pytest.mark.parametrize(("wire", "limits", "expected"), SAME_RULES)
def test_reader_and_protocol_agree(
    wire: bytes, limits: _Limits, expected: str | bytes | int, buffer_size: int
) -> None:
    reader = wsutil.Reader(io.BytesIO(wire), SERVER, buffer_size=buffer_size, **limits)
    try:
        reader.next_frame()
        got: str | bytes | int = reader.read()
    except wsio.ProtocolError as exc:
        got = exc.close_code
    server = ServerProtocol(**limits)
    server.receive_data(wire)
    events = server.events_received()
    if server.error is not None:
        assert isinstance(server.error, wsio.ProtocolError)
        core: str | bytes | int = server.error.close_code
    else:
        message = events[0]
        assert isinstance(message, (TextMessage, BinaryMessage))
        core = message.data
    if isinstance(expected, str):
        assert got == expected.encode() and core == expected
    else:
        assert got == core == expected
