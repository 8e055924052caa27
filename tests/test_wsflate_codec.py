"""wsflate's codec: RFC 7692 §7.2.3 vectors, round trips, window sizes, limits, errors."""

from __future__ import annotations

import gc
import os
import threading
import tracemalloc
import zlib

import pytest
from hypothesis import given, settings, strategies as st

from wsio.exceptions import CompressionError, PayloadTooBigError, ProtocolError
from wsio.wsflate import (
    SYNC_TAIL,
    Compressor,
    Decompressor,
    compress,
    decompress,
)

HELLO = bytes.fromhex("f248cdc9c90700")


# -- RFC 7692 §7.2.3 -----------------------------------------------------------------


def test_rfc_7_2_3_1_one_block() -> None:
    # "the payload of a message containing "Hello" compressed ... 0xf2 0x48 0xcd 0xc9
    # 0xc9 0x07 0x00"
    assert compress(b"Hello") == HELLO
    assert decompress(HELLO) == b"Hello"


def test_rfc_7_2_3_1_fragmented() -> None:
    # The same payload split across two frames: "0xf2 0x48 0xcd" and "0xc9 0xc9 0x07 0x00".
    decompressor = Decompressor()
    decompressor.start_message()
    out = b""
    for piece in (bytes.fromhex("f248cd"), bytes.fromhex("c9c90700")):
        decompressor.feed(piece)
        out += decompressor.read()
    decompressor.feed_eof()
    out += decompressor.read()
    assert decompressor.done
    assert out == b"Hello"


def test_rfc_7_2_3_2_shared_window() -> None:
    # "the second "Hello" ... compressed using the LZ77 sliding window of the first:
    # 0xf2 0x00 0x11 0x00 0x00"
    compressor = Compressor()
    decompressor = Decompressor()
    assert compressor.compress_message(b"Hello") == HELLO
    second = compressor.compress_message(b"Hello")
    assert second == bytes.fromhex("f200110000")
    assert decompressor.decompress_message(HELLO) == b"Hello"
    assert decompressor.decompress_message(second) == b"Hello"


def test_rfc_7_2_3_2_without_takeover_each_message_stands_alone() -> None:
    compressor = Compressor(no_context_takeover=True)
    assert compressor.compress_message(b"Hello") == HELLO
    assert compressor.compress_message(b"Hello") == HELLO
    # RFC 7692 §7.2.2 / reliability case 57: a peer that refers back into the previous
    # message when no_context_takeover was agreed fails to inflate.
    decompressor = Decompressor(no_context_takeover=True)
    assert decompressor.decompress_message(HELLO) == b"Hello"
    with pytest.raises(CompressionError):
        decompressor.decompress_message(bytes.fromhex("f200110000"))


def test_rfc_7_2_3_3_no_compression_block() -> None:
    # "0x00 0x05 0x00 0xfa 0xff 0x48 0x65 0x6c 0x6c 0x6f 0x00"
    assert decompress(bytes.fromhex("000500faff48656c6c6f00")) == b"Hello"


def test_rfc_7_2_3_4_bfinal() -> None:
    # "0xf3 0x48 0xcd 0xc9 0xc9 0x07 0x00 0x00": the block has BFINAL set.
    decompressor = Decompressor()
    assert decompressor.decompress_message(bytes.fromhex("f348cdc9c9070000")) == b"Hello"
    # The stream ended; the next message starts a new one.
    assert decompressor.decompress_message(HELLO) == b"Hello"


def test_rfc_7_2_3_5_two_blocks() -> None:
    # "0xf2 0x48 0x05 0x00 0x00 0x00 0xff 0xff 0xca 0xc9 0xc9 0x07 0x00"
    assert decompress(bytes.fromhex("f24805000000ffffcac9c90700")) == b"Hello"


def test_rfc_7_2_3_6_empty_message() -> None:
    # "0x00": an empty message is a single empty stored block's header.
    assert compress(b"") == b"\x00"
    assert decompress(b"\x00") == b""
    compressor = Compressor()
    assert compressor.compress_message(b"") == b"\x00"
    assert compressor.compress_message(b"Hello") == HELLO
    assert compressor.compress_message(b"") == b"\x00"


def test_compressed_data_never_ends_with_the_tail() -> None:
    # RFC 7692 §7.2.1 step 3, whatever the data (reliability case 58).
    for size in (0, 1, 100, 5000, 70000):
        data = os.urandom(size) + b"a" * size
        out = compress(data)
        assert not out.endswith(SYNC_TAIL)
        assert decompress(out) == data


# -- round trips -------------------------------------------------------------------

# Small messages, and repetitive ones that inflate past one 64 KiB output chunk.
repeated = st.builds(
    lambda unit, count: unit * count, st.binary(min_size=1, max_size=40), st.integers(1, 5000)
)
messages = st.lists(
    st.binary(max_size=3000) | st.text(max_size=500).map(str.encode) | repeated, max_size=6
)


@settings(max_examples=60, deadline=None)
@given(
    messages=messages,
    bits=st.integers(8, 15),
    takeover=st.booleans(),
    level=st.sampled_from([0, 1, 6, 9]),
    mem_level=st.integers(1, 9),
)
def test_round_trip_sequences(
    messages: list[bytes], bits: int, takeover: bool, level: int, mem_level: int
) -> None:
    compressor = Compressor(
        bits, no_context_takeover=not takeover, level=level, mem_level=mem_level
    )
    decompressor = Decompressor(bits, no_context_takeover=not takeover)
    for message in messages:
        payload = compressor.compress_message(message)
        assert decompressor.decompress_message(payload) == message
        # Without takeover each payload stands alone.
        if not takeover:
            assert decompress(payload, window_bits=bits) == message


@settings(max_examples=40, deadline=None)
@given(messages=messages, bits=st.integers(8, 15), cuts=st.lists(st.integers(0, 4000)))
def test_streamed_pieces_and_flushes(messages: list[bytes], bits: int, cuts: list[int]) -> None:
    # A message written in pieces with sync flushes between some of them, read back
    # in small pieces: the same bytes (RFC 7692 §7.2.3.5 shows such a message).
    compressor = Compressor(bits)
    decompressor = Decompressor(bits)
    for message in messages:
        payload = b""
        points = sorted({c % (len(message) + 1) for c in cuts})
        last = 0
        for i, point in enumerate(points):
            payload += compressor.compress(message[last:point])
            if i % 2:
                payload += compressor.flush()
            last = point
        payload += compressor.compress(message[last:])
        payload += compressor.finish()
        assert not payload.endswith(SYNC_TAIL) or payload == b""
        decompressor.start_message()
        out = bytearray()
        for start in range(0, len(payload), 7):
            decompressor.feed(payload[start : start + 7])
            while chunk := decompressor.read(5):
                out += chunk
        decompressor.feed_eof()
        while chunk := decompressor.read(3):
            out += chunk
        assert decompressor.done
        assert out == message


def test_flush_then_finish_drops_the_held_tail() -> None:
    compressor = Compressor()
    payload = compressor.compress(b"Hello") + compressor.flush()
    payload += compressor.finish()
    assert payload == HELLO  # the flush's 00 00 ff ff was held back and dropped
    payload = compressor.compress(b"Hello") + compressor.flush() + compressor.flush()
    payload += compressor.compress(b" world") + compressor.finish()
    decompressor = Decompressor()
    decompressor.decompress_message(HELLO)
    assert decompressor.decompress_message(payload) == b"Hello world"


def strict_inflate(inflater: zlib._Decompress, payload: bytes) -> bytes:
    # zlib checks distances against its window only for output of earlier calls: ask
    # for a few bytes at a time so that every reference goes through the window.
    out = bytearray()
    data = payload + SYNC_TAIL
    while True:
        chunk = inflater.decompress(data, 16)
        out += chunk
        data = inflater.unconsumed_tail
        if not data and len(chunk) < 16:
            return bytes(out)


@settings(max_examples=30, deadline=None)
@given(data=st.binary(min_size=300, max_size=4000), seed=st.binary(min_size=250, max_size=600))
def test_window_bits_8_is_respected(data: bytes, seed: bytes) -> None:
    # zlib refuses to compress with an 8-bit raw window; wsio uses 9, whose matches
    # reach back at most 250 bytes, so zlib's own 8-bit inflater (256 bytes) decodes it,
    # with context takeover too.
    compressor = Compressor(8)
    inflater = zlib.decompressobj(-8)
    for message in (seed + data + seed, data + seed * 3, seed * 20, seed):
        payload = compressor.compress_message(message)
        assert strict_inflate(inflater, payload) == message


def test_strict_inflate_does_check_the_window() -> None:
    # The check above has teeth: a match 300 bytes back (a 10-bit window's) fails an
    # 8-bit inflater.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -10)
    payload = compressor.compress(os.urandom(300) * 3) + compressor.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(zlib.error):
        strict_inflate(zlib.decompressobj(-8), payload[:-4])


def test_window_too_small_for_the_data_fails() -> None:
    # A peer keeping a 15-bit window when 9 was agreed refers back further than this
    # side keeps: 1002, not garbage.
    secret = os.urandom(2000)
    compressor = Compressor(15)
    decompressor = Decompressor(9)
    assert decompressor.decompress_message(compressor.compress_message(secret)) == secret
    with pytest.raises(CompressionError):
        decompressor.decompress_message(compressor.compress_message(secret))


def test_bad_window_bits() -> None:
    for bits in (7, 16, True):
        with pytest.raises(ValueError):
            Compressor(bits)
        with pytest.raises(ValueError):
            Decompressor(bits)
    with pytest.raises(ValueError):
        Compressor(level=10)
    with pytest.raises(ValueError):
        Compressor(mem_level=0)


def test_pooled_compressors_do_not_share_context() -> None:
    # Without takeover compressors are pooled across connections: a message compressed
    # after another connection's must not refer to it (it inflates on its own).
    secret = os.urandom(1000)
    first = Compressor(no_context_takeover=True)
    first.compress_message(secret)
    second = Compressor(no_context_takeover=True)
    payload = second.compress_message(secret)
    assert decompress(payload) == secret
    assert len(payload) > 1000  # no back-reference into the other connection's secret


def test_reset_drops_the_context() -> None:
    compressor = Compressor()
    compressor.compress_message(b"Hello")
    compressor.reset()
    assert compressor.compress_message(b"Hello") == HELLO
    decompressor = Decompressor()
    decompressor.decompress_message(HELLO)
    decompressor.reset()
    with pytest.raises(CompressionError):
        decompressor.decompress_message(bytes.fromhex("f200110000"))


def test_custom_factories() -> None:
    made: list[int] = []

    def compressobj() -> zlib._Compress:
        made.append(1)
        return zlib.compressobj(9, zlib.DEFLATED, -15)

    compressor = Compressor(factory=compressobj, no_context_takeover=True)
    assert compressor.compress_message(b"Hello") == HELLO
    assert compressor.compress_message(b"Hello") == HELLO
    assert made == [1]
    decompressor = Decompressor(factory=lambda: zlib.decompressobj(-15))
    assert decompressor.decompress_message(HELLO) == b"Hello"


# -- hostile input -------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        bytes.fromhex("ff"),  # BTYPE 11, reserved (RFC 1951 §3.2.3)
        bytes.fromhex("07"),  # BFINAL + reserved block type
        bytes.fromhex("0005000000"),  # stored block whose NLEN is not ~LEN
        bytes.fromhex("f248cdc9c907ffffffff"),
    ],
)
def test_corrupt_data_is_a_compression_error(payload: bytes) -> None:
    with pytest.raises(CompressionError) as info:
        decompress(payload)
    error = info.value
    assert isinstance(error, ProtocolError)
    assert error.close_code == 1002
    assert "zlib" not in str(error) and "Error -3" not in str(error)


def test_decoder_usable_after_corrupt_message_is_reset() -> None:
    decompressor = Decompressor()
    with pytest.raises(CompressionError):
        decompressor.decompress_message(b"\xff")
    decompressor.reset()
    assert decompressor.decompress_message(HELLO) == b"Hello"


def test_limit_is_exact() -> None:
    payload = compress(b"x" * 1000)
    assert decompress(payload, max_message_size=1000) == b"x" * 1000
    with pytest.raises(PayloadTooBigError) as info:
        decompress(payload, max_message_size=999)
    assert info.value.close_code == 1009
    assert decompress(payload, max_message_size=None) == b"x" * 1000


def test_limit_applies_per_message_across_pieces() -> None:
    # Reliability case 51: the cap is on the cumulative size of the message, however
    # many pieces it comes in.
    compressor = Compressor()
    payload = compressor.compress_message(b"y" * 100_000)
    decompressor = Decompressor(max_message_size=50_000)
    decompressor.start_message()
    total = 0
    with pytest.raises(PayloadTooBigError):
        for start in range(0, len(payload), 3):
            decompressor.feed(payload[start : start + 3])
            while chunk := decompressor.read(1000):
                total += len(chunk)
        decompressor.feed_eof()
        while chunk := decompressor.read(1000):
            total += len(chunk)
    assert total <= 50_000
    # Each message has its own budget.
    decompressor.reset()
    small = Compressor().compress_message(b"y" * 40_000)
    assert decompressor.decompress_message(small) == b"y" * 40_000
    assert decompressor.decompress_message(Compressor().compress_message(b"z" * 40_000))


@pytest.fixture(scope="module")
def gigabyte_bomb() -> bytes:
    # The densest deflate there is (about 1030:1): 1 GiB of zeros in about 1 MiB. A
    # 1 KiB payload cannot inflate to more than about 1 MiB, so the 1 GiB bomb is this.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(1024)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH)[:-4])
    return b"".join(parts)


def test_gigabyte_bomb_costs_at_most_the_limit(gigabyte_bomb: bytes) -> None:
    # Reliability case 50 (websockets CVE-2018-1000518): with max_message_size=1 MiB the
    # bomb ends in 1009 after at most 1 MiB of output, checked while inflating.
    limit = 1 << 20
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooBigError):
            decompress(gigabyte_bomb, max_message_size=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The limit, plus one inflate chunk (64 KiB, held twice while zlib joins its
    # blocks) and one input chunk (64 KiB).
    assert peak < limit + 4 * 65536


def test_small_bomb_in_one_kib(gigabyte_bomb: bytes) -> None:
    # A 1 KiB frame of the bomb inflates to about 1 MiB: with a 64 KiB limit, 1009.
    piece = gigabyte_bomb[:1024]
    with pytest.raises(PayloadTooBigError):
        decompress(piece, max_message_size=65536)
    decompressor = Decompressor(max_message_size=65536)
    decompressor.start_message()
    decompressor.feed(piece)
    total = 0
    with pytest.raises(PayloadTooBigError):
        while chunk := decompressor.read(4096):
            total += len(chunk)
            assert len(chunk) <= 4096
    assert total <= 65536


def test_pooled_compression_from_many_threads() -> None:
    # The pool is shared by every connection of the process, whatever the thread.
    results: list[bool] = []
    messages = [os.urandom(64) * (i + 1) for i in range(40)]

    def work() -> None:
        ok = True
        for message in messages:
            compressor = Compressor(no_context_takeover=True)
            for _ in range(3):
                ok = ok and decompress(compressor.compress_message(message)) == message
        results.append(ok)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 8


@pytest.mark.parametrize("takeover", [True, False])
def test_large_messages_in_sequence(takeover: bool) -> None:
    # Outputs larger than one inflate chunk (64 KiB) from small payloads, then payloads
    # larger than 64 KiB, one after another on the same codec pair: each message is
    # read from its own start (a regression: a stale input position skipped input).
    text = b"".join(b'{"id": %d, "status": "ok", "tags": ["a", "b"]}, ' % i for i in range(4000))
    messages = [text, text[:70_000], os.urandom(100_000), bytes(200_000), text, b"", text]
    compressor = Compressor(12, no_context_takeover=not takeover)
    decompressor = Decompressor(12, no_context_takeover=not takeover)
    for message in messages:
        assert decompressor.decompress_message(compressor.compress_message(message)) == message


@pytest.mark.parametrize("takeover", [True, False])
def test_messages_near_the_limit_inflate_whole_and_exactly(takeover: bool) -> None:
    # A whole message is inflated in one zlib call up to half the limit, then in bounded
    # chunks: either way a message of up to max_message_size bytes comes out whole, one
    # byte more is 1009, and the next message is read from its own start.
    limit = 300_000
    text = b"".join(b'{"seq": %d, "state": "ready"}, ' % i for i in range(12_000))
    compressor = Compressor(no_context_takeover=not takeover)
    decompressor = Decompressor(no_context_takeover=not takeover, max_message_size=limit)
    for size in (100_000, 200_000, limit, 1000):
        message = text[:size]
        assert decompressor.decompress_message(compressor.compress_message(message)) == message
    with pytest.raises(PayloadTooBigError):
        decompressor.decompress_message(compressor.compress_message(text[: limit + 1]))
    decompressor.reset()
    compressor.reset()
    message = text[:250_000]
    assert decompressor.decompress_message(compressor.compress_message(message)) == message
