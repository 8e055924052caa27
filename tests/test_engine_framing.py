"""The header codec, the RFC 6455 §5 checks and the incremental frame parser."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from tests._pure import load_pure

from wsio import State
from wsio._engine import framing
from wsio._engine.framing import (
    Frame,
    FrameParser,
    Header,
    check_header,
    decode_header,
    encode_header,
    header_size,
)
from wsio._engine.mask import cipher
from wsio.exceptions import PayloadTooBigError, ProtocolError

# RFC 6455 §5.7 examples.
UNMASKED_HELLO = bytes.fromhex("810548656c6c6f")
MASKED_HELLO = bytes.fromhex("818537fa213d7f9f4d5158")
FRAGMENT_HEL = bytes.fromhex("010348656c")
FRAGMENT_LO = bytes.fromhex("80026c6f")
UNMASKED_PING = bytes.fromhex("890548656c6c6f")
MASKED_PONG = bytes.fromhex("8a8537fa213d7f9f4d5158")
BINARY_256_HEADER = bytes.fromhex("827e0100")
BINARY_64K_HEADER = bytes.fromhex("827f0000000000010000")

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 2**32, 2**63 - 1]


def parse_all(data: bytes, chunk: int = 0) -> list[Frame]:
    parser = FrameParser(max_frame_size=2**20)
    frames: list[Frame] = []
    pieces = [data] if not chunk else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        parser.feed(piece)
        while (frame := parser.next_frame()) is not None:
            frames.append(Frame(frame.header.replace(), bytes(frame.payload)))
    assert parser.buffered == 0
    return frames


class TestRFCVectors:
    def test_unmasked_text(self) -> None:
        (frame,) = parse_all(UNMASKED_HELLO)
        assert frame.header == Header(fin=True, opcode=1, length=5)
        assert frame.payload == b"Hello"

    def test_masked_text_is_unmasked_in_place(self) -> None:
        (frame,) = parse_all(MASKED_HELLO)
        assert frame.header.masked and frame.header.mask == bytes.fromhex("37fa213d")
        assert frame.payload == b"Hello"

    def test_fragmented_text(self) -> None:
        first, second = parse_all(FRAGMENT_HEL + FRAGMENT_LO)
        assert (first.header.fin, first.header.opcode, first.payload) == (False, 1, b"Hel")
        assert (second.header.fin, second.header.opcode, second.payload) == (True, 0, b"lo")

    def test_ping_and_masked_pong(self) -> None:
        ping, pong = parse_all(UNMASKED_PING + MASKED_PONG)
        assert (ping.header.opcode, ping.payload) == (9, b"Hello")
        assert (pong.header.opcode, pong.payload) == (10, b"Hello")

    @pytest.mark.parametrize(
        ("prefix", "length"), [(BINARY_256_HEADER, 256), (BINARY_64K_HEADER, 65536)]
    )
    def test_extended_lengths(self, prefix: bytes, length: int) -> None:
        payload = bytes(range(256)) * (length // 256)
        (frame,) = parse_all(prefix + payload, chunk=1000)
        assert frame.header.length == length and frame.payload == payload
        assert encode_header(Header(opcode=2, length=length)) == prefix

    def test_encoding_matches_vectors(self) -> None:
        assert encode_header(Header(opcode=1, length=5)) == UNMASKED_HELLO[:2]
        masked = Header(opcode=1, masked=True, mask=bytes.fromhex("37fa213d"), length=5)
        assert encode_header(masked) == MASKED_HELLO[:6]


@given(
    fin=st.booleans(),
    rsv=st.integers(0, 7),
    opcode=st.integers(0, 15),
    mask=st.none() | st.binary(min_size=4, max_size=4),
    length=st.sampled_from(LENGTHS) | st.integers(0, 2**63 - 1),
)
def test_header_round_trip(
    fin: bool, rsv: int, opcode: int, mask: bytes | None, length: int
) -> None:
    header = Header(fin, rsv, opcode, mask is not None, mask, length)
    wire = encode_header(header)
    assert len(wire) == header_size(header)
    assert decode_header(wire) == (header, len(wire))
    # Any strict prefix is incomplete, never an error or a wrong header.
    for cut in range(len(wire)):
        assert decode_header(wire[:cut]) is None
    # The pure and compiled codecs agree byte for byte.
    pure = load_pure("framing")
    pure_header = pure.Header(fin, rsv, opcode, mask is not None, mask, length)
    assert pure.encode_header(pure_header) == wire


@pytest.mark.parametrize("length", LENGTHS)
def test_header_size(length: int) -> None:
    expected = 2 if length <= 125 else 4 if length <= 65535 else 10
    assert header_size(Header(length=length)) == expected
    assert header_size(Header(length=length, masked=True, mask=b"abcd")) == expected + 4


class TestDecodeErrors:
    def test_64_bit_length_with_top_bit_set(self) -> None:
        with pytest.raises(ProtocolError, match="most significant bit"):
            decode_header(bytes.fromhex("827f8000000000000000"))

    @pytest.mark.parametrize(
        "wire", [bytes.fromhex("827e007d"), bytes.fromhex("827f000000000000ffff")]
    )
    def test_non_minimal_length(self, wire: bytes) -> None:
        with pytest.raises(ProtocolError, match="where"):
            decode_header(wire)

    def test_decode_into_reuses_the_header(self) -> None:
        header = Header()
        result = decode_header(MASKED_HELLO, 0, header)
        assert result is not None and result[0] is header and header.length == 5


SERVER = int(State.SERVER_SIDE)
CLIENT = int(State.CLIENT_SIDE)
MASK = b"\x01\x02\x03\x04"


def masked(**fields: object) -> Header:
    return Header(masked=True, mask=MASK).replace(**fields)


class TestCheckHeader:
    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
    def test_reserved_opcode(self, opcode: int) -> None:
        with pytest.raises(ProtocolError, match="reserved opcode") as info:
            check_header(masked(opcode=opcode), SERVER)
        assert info.value.close_code == 1002

    @pytest.mark.parametrize("opcode", [8, 9, 10])
    def test_control_frame_too_long(self, opcode: int) -> None:
        check_header(masked(opcode=opcode, length=125), SERVER)
        with pytest.raises(ProtocolError, match="longer than 125"):
            check_header(masked(opcode=opcode, length=126), SERVER)

    @pytest.mark.parametrize("opcode", [8, 9, 10])
    def test_control_frame_fragmented(self, opcode: int) -> None:
        with pytest.raises(ProtocolError, match="fragmented control"):
            check_header(masked(opcode=opcode, fin=False), SERVER)

    @pytest.mark.parametrize("rsv", [1, 2, 4, 7])
    def test_rsv_without_extension(self, rsv: int) -> None:
        with pytest.raises(ProtocolError, match="reserved bits"):
            check_header(masked(opcode=1, rsv=rsv), SERVER)
        check_header(masked(opcode=1, rsv=rsv), SERVER | int(State.EXTENDED))

    def test_server_receives_unmasked_frame(self) -> None:
        with pytest.raises(ProtocolError, match="not masked"):
            check_header(Header(opcode=1), SERVER)

    def test_client_receives_masked_frame(self) -> None:
        with pytest.raises(ProtocolError, match="is masked"):
            check_header(masked(opcode=1), CLIENT)
        check_header(Header(opcode=1), CLIENT)

    def test_data_frame_while_fragmented(self) -> None:
        fragmented = SERVER | int(State.FRAGMENTED)
        for opcode in (1, 2):
            with pytest.raises(ProtocolError, match="new data frame"):
                check_header(masked(opcode=opcode), fragmented)
        check_header(masked(opcode=0), fragmented)
        check_header(masked(opcode=9), fragmented)  # control frames may interleave

    def test_continuation_while_not_fragmented(self) -> None:
        with pytest.raises(ProtocolError, match="no message in progress"):
            check_header(masked(opcode=0), SERVER)


class TestFrameParser:
    def test_byte_at_a_time_equals_all_at_once(self) -> None:
        stream = MASKED_HELLO + FRAGMENT_HEL + FRAGMENT_LO + MASKED_PONG
        assert parse_all(stream, chunk=1) == parse_all(stream)

    def test_declared_length_over_limit_fails_at_the_header(self) -> None:
        parser = FrameParser(max_frame_size=1000)
        parser.feed(bytes.fromhex("827f0000000100000000"))  # declares 4 GiB, sends nothing
        with pytest.raises(PayloadTooBigError) as info:
            parser.next_frame()
        assert info.value.close_code == 1009

    def test_buffer_grows_with_arrivals_not_declarations(self) -> None:
        parser = FrameParser(max_frame_size=2**30, buffer_size=1024)
        parser.feed(bytes.fromhex("827f0000000010000000"))  # declares 256 MiB
        assert parser.next_frame() is None
        view = parser.get_buffer()
        assert len(view) <= 4096  # doubled once, not sized to the declaration

    def test_read_into_the_parser_buffer(self) -> None:
        parser = FrameParser(buffer_size=16)
        stream = UNMASKED_PING + BINARY_256_HEADER + bytes(256)
        frames = []
        pos = 0
        while pos < len(stream):
            view = parser.get_buffer()
            n = min(len(view), 7, len(stream) - pos)
            view[:n] = stream[pos : pos + n]
            parser.buffer_updated(n)
            pos += n
            while (frame := parser.next_frame()) is not None:
                frames.append((frame.header.opcode, bytes(frame.payload)))
        assert frames == [(9, b"Hello"), (2, bytes(256))]

    def test_unmask_false_leaves_payload_masked(self) -> None:
        parser = FrameParser(unmask=False)
        parser.feed(MASKED_HELLO)
        frame = parser.next_frame()
        assert frame is not None and bytes(frame.payload) == MASKED_HELLO[6:]

    def test_reset_forgets_buffered_bytes(self) -> None:
        parser = FrameParser()
        parser.feed(MASKED_HELLO[:4])
        parser.reset()
        parser.feed(UNMASKED_PING)
        frame = parser.next_frame()
        assert frame is not None and frame.header.opcode == 9

    @given(
        payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8),
        chunk=st.integers(1, 400),
        use_mask=st.booleans(),
    )
    def test_any_split_gives_the_same_frames(
        self, payloads: list[bytes], chunk: int, use_mask: bool
    ) -> None:
        stream = bytearray()
        for payload in payloads:
            mask = b"\x9a\x01\xff\x10" if use_mask else None
            stream += encode_header(
                Header(opcode=2, masked=use_mask, mask=mask, length=len(payload))
            )
            body = bytearray(payload)
            if mask:
                cipher(body, mask)
            stream += body
        frames = parse_all(bytes(stream), chunk=chunk)
        assert [bytes(f.payload) for f in frames] == payloads


def test_pure_and_compiled_parsers_agree() -> None:
    pure = load_pure("framing")
    stream = MASKED_HELLO + FRAGMENT_HEL + FRAGMENT_LO + BINARY_256_HEADER + bytes(256)
    results = []
    for module in (framing, pure):
        parser = module.FrameParser()
        parser.feed(stream)
        frames = []
        while (frame := parser.next_frame()) is not None:
            h = frame.header
            frames.append(
                (h.fin, h.rsv, h.opcode, h.masked, h.mask, h.length, bytes(frame.payload))
            )
        results.append(frames)
    assert results[0] == results[1]
