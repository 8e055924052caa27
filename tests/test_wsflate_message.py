"""wsflate.MessageState, is_compressed and the frame helpers: RSV1 rules of RFC 7692 §6."""

from __future__ import annotations

import pytest

import wsio
from wsio.exceptions import LocalProtocolError, PayloadTooBigError, ProtocolError
from wsio.wsflate import (
    Compressor,
    Decompressor,
    MessageState,
    compress_frame,
    decompress_frame,
    is_compressed,
)

HELLO = bytes.fromhex("f248cdc9c90700")
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def header(opcode: int, rsv: int = 0, fin: bool = True) -> wsio.Header:
    return wsio.Header(fin=fin, rsv=rsv, opcode=opcode, length=0)


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_is_compressed_data(opcode: int) -> None:
    assert is_compressed(header(opcode, 0b100))
    assert is_compressed(header(opcode, 0b110, fin=False))
    assert not is_compressed(header(opcode))
    assert not is_compressed(header(opcode, 0b010))


@pytest.mark.parametrize("opcode", [CONT, CLOSE, PING, PONG])
def test_is_compressed_refuses_rsv1_elsewhere(opcode: int) -> None:
    # RFC 7692 §6.1: not on "control frames and non-first fragments of a data message".
    assert not is_compressed(header(opcode))
    with pytest.raises(ProtocolError) as info:
        is_compressed(header(opcode, 0b100))
    assert info.value.close_code == 1002


def test_unset_bits_records_and_clears() -> None:
    state = MessageState()
    first = state.unset_bits(header(TEXT, 0b100, fin=False))
    assert first.rsv == 0 and state.is_compressed()
    # Continuations and interleaved control frames leave the message's flag alone.
    assert state.unset_bits(header(PING)).rsv == 0
    assert state.unset_bits(header(CONT, 0, fin=True)).rsv == 0
    assert state.is_compressed()
    # The next message without RSV1 is not compressed.
    state.unset_bits(header(BINARY))
    assert not state.is_compressed()


def test_unset_bits_keeps_other_bits() -> None:
    # RSV2/RSV3 belong to other extensions (or to wsutil's check): left as they were.
    assert MessageState().unset_bits(header(TEXT, 0b111)).rsv == 0b011


@pytest.mark.parametrize("opcode", [CONT, CLOSE, PING, PONG])
def test_unset_bits_refuses_rsv1_elsewhere(opcode: int) -> None:
    with pytest.raises(ProtocolError):
        MessageState().unset_bits(header(opcode, 0b100))


def test_unset_bits_refuses_rsv1_without_negotiation() -> None:
    # Reliability case 52 (aiohttp PR #12976): no negotiation, RSV1 means 1002.
    state = MessageState(negotiated=False)
    assert state.unset_bits(header(TEXT)).rsv == 0
    with pytest.raises(ProtocolError) as info:
        state.unset_bits(header(TEXT, 0b100))
    assert info.value.close_code == 1002


def test_set_bits_first_frame_only() -> None:
    state = MessageState()
    assert state.set_bits(header(TEXT)).rsv == 0
    state.set_compressed(True)
    assert state.set_bits(header(TEXT, fin=False)).rsv == 0b100
    assert state.set_bits(header(CONT)).rsv == 0
    assert state.set_bits(header(PING)).rsv == 0
    assert state.set_bits(header(CLOSE)).rsv == 0
    assert state.set_bits(header(BINARY, 0b001)).rsv == 0b101
    state.set_compressed(False)
    assert state.set_bits(header(BINARY)).rsv == 0


def test_compress_frame_rfc_vector() -> None:
    # RFC 7692 §7.2.3.1: "0xc1 0x07 0xf2 0x48 0xcd 0xc9 0xc9 0x07 0x00"
    frame = compress_frame(wsio.new_text_frame(b"Hello"))
    assert frame.header.rsv1 and frame.header.fin and frame.header.length == 7
    assert bytes(frame.payload) == HELLO
    assert wsio.compile_frame(frame) == bytes.fromhex("c107f248cdc9c90700")
    back = decompress_frame(frame)
    assert not back.header.rsv1 and back.header.length == 5
    assert bytes(back.payload) == b"Hello"


def test_compress_frame_keeps_the_input() -> None:
    frame = wsio.new_binary_frame(b"abc" * 100)
    compressed = compress_frame(frame)
    assert frame.header.rsv == 0 and frame.header.length == 300
    assert compressed.header.opcode == BINARY


def test_decompress_frame_passes_uncompressed_through() -> None:
    frame = wsio.new_text_frame(b"plain")
    assert decompress_frame(frame) is frame


def test_frame_helpers_with_context_takeover() -> None:
    # RFC 7692 §7.2.3.2 on frames: the second "Hello" is "0xc1 0x05 0xf2 0x00 0x11 0x00 0x00".
    compressor, decompressor = Compressor(), Decompressor()
    first = compress_frame(wsio.new_text_frame(b"Hello"), compressor=compressor)
    second = compress_frame(wsio.new_text_frame(b"Hello"), compressor=compressor)
    assert wsio.compile_frame(second) == bytes.fromhex("c105f200110000")
    for frame in (first, second):
        assert bytes(decompress_frame(frame, decompressor=decompressor).payload) == b"Hello"


def test_frame_helpers_refuse_what_they_cannot_do() -> None:
    with pytest.raises(LocalProtocolError):
        compress_frame(wsio.new_ping_frame(b"x"))
    with pytest.raises(LocalProtocolError):
        compress_frame(wsio.new_frame(TEXT, False, b"part"))
    with pytest.raises(LocalProtocolError):
        compress_frame(compress_frame(wsio.new_text_frame(b"x")))
    fragment = wsio.Frame(header(TEXT, 0b100, fin=False), HELLO)
    with pytest.raises(LocalProtocolError):
        decompress_frame(fragment)
    with pytest.raises(ProtocolError):
        decompress_frame(wsio.Frame(header(PING, 0b100), HELLO))


def test_decompress_frame_limit() -> None:
    frame = compress_frame(wsio.new_binary_frame(bytes(100_000)))
    with pytest.raises(PayloadTooBigError):
        decompress_frame(frame, max_message_size=99_999)
    assert decompress_frame(frame, max_message_size=100_000).header.length == 100_000
