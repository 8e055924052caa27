"""wsio.protocol with no sockets: RFC vectors, the closing handshake, every violation."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from wsio import InvalidStateError, LocalProtocolError, ProtocolError
from wsio._engine.framing import Header, encode_header
from wsio._engine.mask import mask_into
from wsio.protocol import (
    BinaryMessage,
    Chunk,
    ClientProtocol,
    Close,
    ConnectionState,
    Event,
    PerMessageDeflate,
    Ping,
    Pong,
    Protocol,
    ServerProtocol,
    TextMessage,
)
from wsio.wsflate import Parameters

KEY = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """The wire bytes of one frame, masked with KEY (as a client sends) unless told not."""
    header = Header(fin=fin, rsv=rsv, opcode=opcode, length=len(payload))
    if not mask:
        return encode_header(header) + payload
    header.masked, header.mask = True, KEY
    body = bytearray(len(payload))
    mask_into(body, payload, KEY)
    return encode_header(header) + bytes(body)


def sent(proto: Protocol) -> bytes:
    return b"".join(bytes(b) for b in proto.data_to_send())


def unmask_frames(data: bytes) -> list[tuple[int, bool, int, bytes]]:
    """Parse frames a client sent, as (opcode, fin, rsv, payload), with a server protocol's
    view of the wire: the test sees what a peer would."""
    out = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = int.from_bytes(data[pos : pos + 2], "big"), pos + 2
        elif n == 127:
            n, pos = int.from_bytes(data[pos : pos + 8], "big"), pos + 8
        payload = data[pos : pos + n]
        if b1 & 0x80:
            key, pos = data[pos : pos + 4], pos + 4
            body = bytearray(n)
            mask_into(body, data[pos : pos + n], key)
            payload = bytes(body)
        pos += n
        out.append((b0 & 0x0F, bool(b0 & 0x80), (b0 >> 4) & 7, payload))
    return out


# -- RFC 6455 §5.7 examples ------------------------------------------------------------


def test_rfc6455_single_frame_unmasked_text() -> None:
    client = ClientProtocol()
    client.receive_data(b"\x81\x05\x48\x65\x6c\x6c\x6f")
    assert client.events_received() == [TextMessage("Hello")]


def test_rfc6455_single_frame_masked_text() -> None:
    server = ServerProtocol()
    server.receive_data(b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    assert server.events_received() == [TextMessage("Hello")]


def test_rfc6455_fragmented_unmasked_text() -> None:
    client = ClientProtocol()
    client.receive_data(b"\x01\x03\x48\x65\x6c")
    assert client.events_received() == []
    client.receive_data(b"\x80\x02\x6c\x6f")
    assert client.events_received() == [TextMessage("Hello")]


def test_rfc6455_ping_and_masked_pong() -> None:
    client = ClientProtocol()
    client.receive_data(b"\x89\x05\x48\x65\x6c\x6c\x6f")
    assert client.events_received() == [Ping(b"Hello")]
    assert unmask_frames(sent(client)) == [(10, True, 0, b"Hello")]  # answered
    server = ServerProtocol()
    server.receive_data(b"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58")
    assert server.events_received() == [Pong(b"Hello")]
    assert sent(server) == b""


@pytest.mark.parametrize(
    ("head", "size"),
    [(b"\x82\x7e\x01\x00", 256), (b"\x82\x7f" + (65536).to_bytes(8, "big"), 65536)],
)
def test_rfc6455_binary_lengths(head: bytes, size: int) -> None:
    client = ClientProtocol()
    payload = bytes(range(256)) * (size // 256)
    client.receive_data(head + payload)
    assert client.events_received() == [BinaryMessage(payload)]
    server = ServerProtocol()
    server.send_binary(payload)
    assert sent(server) == head + payload


# -- RFC 7692 §7.2.3 examples ----------------------------------------------------------


def deflate_client(**params: object) -> ClientProtocol:
    return ClientProtocol(extensions=[PerMessageDeflate(Parameters(**params), threshold=0)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "wire",
    [
        b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00",  # §7.2.3.1
        b"\x41\x03\xf2\x48\xcd\x80\x04\xc9\xc9\x07\x00",  # §7.2.3.1, fragmented
        b"\xc1\x0b\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00",  # §7.2.3.3, stored block
        b"\xc1\x08\xf3\x48\xcd\xc9\xc9\x07\x00\x00",  # §7.2.3.4, BFINAL
        b"\xc1\x0d\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00",  # §7.2.3.5
    ],
)
def test_rfc7692_received_vectors(wire: bytes) -> None:
    client = deflate_client()
    client.receive_data(wire)
    assert client.events_received() == [TextMessage("Hello")]


def test_rfc7692_shared_window_both_ways() -> None:
    # §7.2.3.2: the second "Hello" refers back to the first.
    first, second = b"\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", b"\xc1\x05\xf2\x00\x11\x00\x00"
    client = deflate_client()
    client.receive_data(first + second)
    assert client.events_received() == [TextMessage("Hello"), TextMessage("Hello")]
    server = ServerProtocol(extensions=[PerMessageDeflate(threshold=0)])
    server.send_text("Hello")
    server.send_text("Hello")
    assert sent(server) == first + second


def test_rfc7692_empty_message() -> None:
    # §7.2.3.6: an empty message compresses to a single 0x00.
    server = ServerProtocol(extensions=[PerMessageDeflate(threshold=0)])
    server.send_binary(b"")
    assert sent(server) == b"\xc2\x01\x00"


def test_compression_threshold_and_per_message_choice() -> None:
    server = ServerProtocol(extensions=[PerMessageDeflate(threshold=10)])
    server.send_text("short")
    server.send_text("long enough to compress")
    server.send_text("long enough but not this one", compress=False)
    server.send_binary(b"x", compress=True)
    rsv = [f[2] for f in unmask_frames(sent(server))]
    assert rsv == [0, 4, 0, 4]


def test_compressed_fragmented_send_round_trip() -> None:
    ext = [PerMessageDeflate(threshold=0)]
    client, server = ClientProtocol(extensions=ext), ServerProtocol(extensions=ext)
    client.send_text("Hello, ", fin=False)
    client.send_continuation(b"world" * 100, fin=True)
    frames = unmask_frames(sent(client))
    assert [(f[0], f[2]) for f in frames] == [(1, 4), (0, 0)]
    for buf in [frame(op, p, fin=fin, rsv=rsv) for op, fin, rsv, p in frames]:
        server.receive_data(buf)
    assert server.events_received() == [TextMessage("Hello, " + "world" * 100)]


# -- sending ---------------------------------------------------------------------------


def test_client_masks_and_server_reads_it() -> None:
    client, server = ClientProtocol(), ServerProtocol()
    client.send_text("héllo")
    client.send_binary(b"\x00" * 70000)
    client.send_ping(b"p")
    client.send_text("ab", fin=False)
    client.send_continuation(b"cd")
    for buf in client.data_to_send():
        server.receive_data(buf)
    assert server.events_received() == [
        TextMessage("héllo"),
        BinaryMessage(b"\x00" * 70000),
        Ping(b"p"),
        TextMessage("abcd"),
    ]
    assert unmask_frames(sent(server)) == [(10, True, 0, b"p")]


def test_large_payload_is_not_concatenated_with_its_header() -> None:
    server = ServerProtocol()
    payload = b"z" * 100_000
    server.send_binary(payload)
    buffers = server.data_to_send()
    assert len(buffers) == 2 and buffers[1] is payload
    assert bytes(buffers[0]) == b"\x82\x7f" + (100_000).to_bytes(8, "big")
    assert server.data_to_send() == []


def test_fragment_misuse_raises_and_sends_nothing() -> None:
    server = ServerProtocol()
    with pytest.raises(InvalidStateError):
        server.send_continuation(b"x")
    server.send_text("a", fin=False)
    with pytest.raises(InvalidStateError):
        server.send_binary(b"b")
    server.send_continuation(b"c")
    with pytest.raises(LocalProtocolError):
        server.send_ping(b"x" * 126)
    assert [f[:2] for f in unmask_frames(sent(server))] == [(1, False), (0, True)]


# -- the closing handshake -------------------------------------------------------------


def test_peer_close_is_answered_once_with_its_code() -> None:
    server = ServerProtocol()
    server.receive_data(frame(8, b"\x03\xe8bye") + frame(1, b"ignored"))
    assert server.events_received() == [Close(1000, "bye")]
    assert unmask_frames(sent(server)) == [(8, True, 0, b"\x03\xe8")]
    assert server.state is ConnectionState.CLOSED and server.close_expected()
    assert server.close_initiator == "remote"
    assert (server.close_code, server.close_reason) == (1000, "bye")
    server.receive_data(frame(8, b"\x03\xe8"))
    assert server.events_received() == [] and sent(server) == b""
    with pytest.raises(InvalidStateError):
        server.send_close()
    with pytest.raises(InvalidStateError):
        server.send_text("late")


def test_empty_close_is_1005_and_answered_empty() -> None:
    server = ServerProtocol()
    server.receive_data(frame(8))
    assert server.events_received() == [Close(1005, "")]
    assert sent(server) == b"\x88\x00"


def test_local_close_waits_for_the_peer() -> None:
    server = ServerProtocol()
    server.send_close(1001, "going")
    assert server.state is ConnectionState.CLOSING and not server.close_expected()
    assert sent(server) == b"\x88\x07\x03\xe9going"
    with pytest.raises(InvalidStateError):
        server.send_ping()
    server.receive_data(frame(9, b"late ping"))  # not answered once the Close is out
    server.receive_data(frame(8, b"\x03\xe9"))
    assert server.events_received() == [Ping(b"late ping"), Close(1001, "")]
    assert sent(server) == b""  # answered once: ours was already sent
    assert server.close_initiator == "local" and server.close_expected()
    assert server.close_sent == Close(1001, "going")


@pytest.mark.parametrize("code", [1005, 1006, 999, 1004, 1015, 2999, 5000])
def test_send_close_refuses_codes_never_on_the_wire(code: int) -> None:
    server = ServerProtocol()
    if code == 1005:
        with pytest.raises(LocalProtocolError):
            server.send_close(1005, "a reason")
        server.send_close(1005)
        assert sent(server) == b"\x88\x00"
        return
    with pytest.raises(LocalProtocolError):
        server.send_close(code)
    assert sent(server) == b"" and server.state is ConnectionState.OPEN


def test_send_close_refuses_a_long_reason() -> None:
    with pytest.raises(LocalProtocolError):
        ServerProtocol().send_close(1000, "é" * 62)


def test_eof_without_close_is_1006() -> None:
    server = ServerProtocol()
    server.receive_data(frame(1, b"half")[:4])
    server.receive_eof()
    assert server.close_expected() and server.close_code == 1006
    assert server.events_received() == [] and sent(server) == b""


def test_fail_sends_one_close() -> None:
    server = ServerProtocol()
    server.fail(1011, "boom")
    server.fail(1002, "again")
    assert sent(server) == b"\x88\x06\x03\xf3boom"
    assert server.state is ConnectionState.CLOSED


# -- violations: one fail each, with the right code ------------------------------------

VIOLATIONS = [
    ("unmasked frame to a server", frame(1, b"x", mask=False), 1002),
    ("reserved opcode 3", frame(3), 1002),
    ("reserved opcode 0xB", frame(11), 1002),
    ("RSV1 with no extension", frame(1, b"x", rsv=4), 1002),
    ("RSV2 with no extension", frame(2, b"x", rsv=2), 1002),
    ("control frame of 126 bytes", b"\x89\xfe\x00\x7e" + KEY + b"\x00" * 126, 1002),
    ("fragmented ping", frame(9, fin=False), 1002),
    ("continuation first", frame(0, b"x"), 1002),
    ("new message inside a fragmented one", frame(1, b"a", fin=False) + frame(2, b"b"), 1002),
    ("length in 2 bytes where 1 would do", b"\x82\xfe\x00\x05" + KEY + b"12345", 1002),
    ("length in 8 bytes where 2 would do", b"\x82\xff" + (5).to_bytes(8, "big") + KEY, 1002),
    ("64-bit length with its top bit set", b"\x82\xff\x80" + b"\x00" * 7 + KEY, 1002),
    ("close body of 1 byte", frame(8, b"\x03"), 1002),
    ("close code 1005 on the wire", frame(8, b"\x03\xed"), 1002),
    ("close code 999", frame(8, b"\x03\xe7"), 1002),
    ("close code 5000", frame(8, b"\x13\x88"), 1002),
    ("close reason not UTF-8", frame(8, b"\x03\xe8\xff"), 1007),
    ("text not UTF-8", frame(1, b"\xce\xba\xff"), 1007),
    ("fragmented text bad in the first fragment", frame(1, b"\xff", fin=False), 1007),
    ("text ending inside a character", frame(1, b"ab\xce", fin=False) + frame(0, b""), 1007),
    ("frame over max_frame_size", b"\x82\xff" + (2**30).to_bytes(8, "big") + KEY, 1009),
]


@pytest.mark.parametrize(("name", "wire", "code"), VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
@pytest.mark.parametrize("split", [False, True])
def test_violation_fails_once_with_its_code(name: str, wire: bytes, code: int, split: bool) -> None:
    server = ServerProtocol(streaming=split)  # the streaming path takes the same checks
    chunks = [wire[i : i + 1] for i in range(len(wire))] if split else [wire]
    for chunk in [*chunks, frame(1, b"after")]:
        server.receive_data(chunk)
    assert isinstance(server.error, ProtocolError) and server.error.close_code == code
    closes = [f for f in unmask_frames(sent(server)) if f[0] == 8]
    assert len(closes) == 1 and int.from_bytes(closes[0][3][:2], "big") == code
    assert server.close_expected()
    # Nothing of the bad message, nor of what followed it, is delivered whole.
    events = server.events_received()
    assert not [e for e in events if isinstance(e, (TextMessage, BinaryMessage))]
    assert not [e for e in events if isinstance(e, Chunk) and e.message_finished]


def test_client_refuses_masked_frames() -> None:
    client = ClientProtocol()
    client.receive_data(frame(1, b"x"))
    assert client.error is not None and client.error.close_code == 1002  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kwargs", "wire", "code"),
    [
        ({"max_message_size": 10}, frame(1, b"x" * 6, fin=False) + frame(0, b"y" * 6), 1009),
        (
            {"max_fragments": 2},
            frame(2, b"", fin=False) + frame(0, b"", fin=False) + frame(0),
            1009,
        ),
        ({"max_frame_size": 5}, frame(2, b"123456"), 1009),
    ],
)
def test_limits_fail_with_1009(kwargs: dict[str, int], wire: bytes, code: int) -> None:
    server = ServerProtocol(**kwargs)  # type: ignore[arg-type]
    server.receive_data(wire)
    assert server.error is not None and server.error.close_code == code  # type: ignore[attr-defined]


def _raw_deflate(data: bytes) -> bytes:
    # zlib.compress(data, wbits=-15), which Python 3.10 does not take.
    compressor = zlib.compressobj(wbits=-15)
    return compressor.compress(data) + compressor.flush()


DEFLATE_VIOLATIONS = [
    ("RSV1 on a continuation", frame(1, b"\xf2", fin=False, rsv=4) + frame(0, b"x", rsv=4), 1002),
    ("RSV1 on a ping", frame(9, b"", rsv=4), 1002),
    ("RSV2 with only deflate", frame(1, b"x", rsv=2), 1002),
    ("corrupt deflate data", frame(2, b"\xff\xff\xff\xff", rsv=4), 1002),
    (
        "inflated text not UTF-8",
        frame(1, _raw_deflate(b"\xff")[: -0 or None], rsv=4),
        1007,
    ),
]


@pytest.mark.parametrize(
    ("name", "wire", "code"), DEFLATE_VIOLATIONS, ids=[v[0] for v in DEFLATE_VIOLATIONS]
)
def test_deflate_violation_fails_once(name: str, wire: bytes, code: int) -> None:
    server = ServerProtocol(extensions=[PerMessageDeflate()])
    server.receive_data(wire)
    assert server.error is not None and server.error.close_code == code  # type: ignore[attr-defined]
    assert len([f for f in unmask_frames(sent(server)) if f[0] == 8]) == 1


def test_decompression_bomb_stops_at_the_limit() -> None:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\x00" * 10_000_000) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(bomb) < 20_000
    server = ServerProtocol(extensions=[PerMessageDeflate()], max_message_size=1_000_000)
    server.receive_data(frame(2, bomb, rsv=4))
    assert server.error is not None and server.error.close_code == 1009  # type: ignore[attr-defined]


class _BrokenExtension:
    """An extension whose codec has a bug: the protocol must answer 1011, not raise."""

    rsv = 0b100

    def bind(self, *, client: bool, max_message_size: int | None) -> _BrokenExtension:
        return self

    def inflate(self, piece: object, first: bool, final: bool) -> bytes:
        raise RuntimeError("bug")


def test_internal_error_fails_with_1011() -> None:
    server = ServerProtocol(extensions=[_BrokenExtension()])
    server.receive_data(frame(2, b"x", rsv=4))
    assert isinstance(server.error, RuntimeError)
    assert sent(server).startswith(b"\x88\x10\x03\xf3")


# -- streaming, and the receive buffer -------------------------------------------------


def test_streaming_delivers_a_large_frame_in_pieces() -> None:
    server = ServerProtocol(streaming=True)
    payload = ("é" * 50_000).encode()
    wire = frame(1, payload)
    pieces: list[bytes] = []
    for i in range(0, len(wire), 8192):
        server.receive_data(wire[i : i + 8192])
        for event in server.events_received():
            assert isinstance(event, Chunk) and event.opcode == 1
            pieces.append(bytes(event.data))
            last = event
        assert server.buffer_size <= 2 * 8192 + 64  # never a frame-sized buffer
    assert b"".join(pieces) == payload and len(pieces) > 1
    assert last.frame_finished and last.message_finished


def test_streaming_small_frames_whole_and_fragment_flags() -> None:
    server = ServerProtocol(streaming=True)
    server.receive_data(frame(2, b"ab", fin=False) + frame(0, b"cd"))
    assert server.events_received() == [Chunk(2, b"ab", True, False), Chunk(2, b"cd", True, True)]


def test_read_into_the_buffer_lazily_and_shrink_after_a_large_frame() -> None:
    server = ServerProtocol()
    assert server.buffer_size == 0
    wire = frame(2, b"q" * 1_000_000) + frame(1, b"small")
    pos = 0
    events = []
    while pos < len(wire):
        view = server.get_buffer(65536)
        n = min(len(view), len(wire) - pos)
        view[:n] = wire[pos : pos + n]
        server.buffer_updated(n)
        pos += n
        events += server.events_received()
    assert events == [BinaryMessage(b"q" * 1_000_000), TextMessage("small")]
    server.get_buffer()
    assert server.buffer_size == 4096


def test_text_as_bytes_on_request() -> None:
    server = ServerProtocol(decode_text=False)
    server.receive_data(frame(1, "é".encode()) + frame(1, b"\xff"))
    assert server.events_received() == [TextMessage("é".encode())]
    assert server.error is not None and server.error.close_code == 1007  # type: ignore[attr-defined]


# -- any split of the input, any sends between: the same events ------------------------

_messages = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.text(max_size=300), st.integers(1, 3)),
        st.tuples(st.just("binary"), st.binary(max_size=9000), st.integers(1, 3)),
        st.tuples(st.just("ping"), st.binary(max_size=125), st.just(1)),
    ),
    max_size=8,
)


def _wire(messages: list[tuple[str, str | bytes, int]], bad: bytes) -> bytes:
    out = b""
    for kind, data, parts in messages:
        if kind == "ping":
            assert isinstance(data, bytes)
            out += frame(9, data)
            continue
        payload = data.encode() if isinstance(data, str) else data
        step = max(1, len(payload) // parts)
        cuts = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
        for i, cut in enumerate(cuts):
            op = (1 if kind == "text" else 2) if i == 0 else 0
            out += frame(op, cut, fin=i == len(cuts) - 1)
    return out + bad


class SplitFeed(RuleBasedStateMachine):
    """Feeds one stream in arbitrary pieces, sending in between; the events must be those
    of the whole stream fed at once, and a bad stream fails exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.proto: ServerProtocol | None = None

    @rule(
        messages=_messages,
        bad=st.sampled_from(
            [b"", frame(1, b"\xff"), frame(3), frame(0, b"x"), frame(1, b"hello")[:5]]
        ),
        cuts=st.lists(st.integers(0, 40_000), max_size=12),
        streaming=st.booleans(),
    )
    def feed(
        self,
        messages: list[tuple[str, str | bytes, int]],
        bad: bytes,
        cuts: list[int],
        streaming: bool,
    ) -> None:
        wire = _wire(messages, bad)
        reference = ServerProtocol(streaming=streaming)
        reference.receive_data(wire)
        expected = _normalise(_copied(reference.events_received()))
        proto = self.proto = ServerProtocol(streaming=streaming)
        got: list[object] = []
        points = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
        for a, b in itertools.pairwise(points):
            proto.receive_data(wire[a:b])
            got += _copied(proto.events_received())  # views die at the next call
            if proto.state is ConnectionState.OPEN:
                proto.send_binary(b"interleaved")
            assert proto.buffer_size <= max(4096, 2 * (b - a) + 64, 2 * 9000 + 64)
        assert _normalise(got) == expected
        closes = [f for f in unmask_frames(sent(proto)) if f[0] == 8]
        if bad in (frame(1, b"\xff"), frame(3), frame(0, b"x")):
            assert proto.error is not None and len(closes) == 1
        else:
            assert proto.error is None and closes == []

    @invariant()
    def failed_connections_are_closed(self) -> None:
        if self.proto is not None and self.proto.error is not None:
            assert self.proto.close_expected()


def _copied(events: Sequence[object]) -> list[object]:
    return [
        (e.opcode, bytes(e.data), e.message_finished) if isinstance(e, Chunk) else e for e in events
    ]


def _normalise(events: list[object]) -> list[object]:
    # Streaming chunks depend on where reads end; what they carry must not.
    out: list[object] = []
    for event in events:
        if isinstance(event, tuple) and out and isinstance(out[-1], tuple) and not out[-1][2]:
            out[-1] = (out[-1][0], out[-1][1] + event[1], event[2])
        else:
            out.append(event)
    return out


TestSplitFeed = SplitFeed.TestCase
TestSplitFeed.settings = settings(
    max_examples=60, stateful_step_count=4, deadline=None, suppress_health_check=list(HealthCheck)
)


def test_messages_before_a_close_can_still_be_answered_first() -> None:
    # Autobahn 3.2, 5.15, 7.1.x: the echo of what came before the Close goes out first.
    server = ServerProtocol()
    server.receive_data(frame(1, b"first") + frame(1, b"bad", rsv=2))
    assert server.events_received() == [TextMessage("first")]
    assert server.close_expected()
    server.send_text("first")
    frames = unmask_frames(sent(server))
    assert [f[0] for f in frames] == [1, 8] and frames[1][3][:2] == b"\x03\xea"
    with pytest.raises(InvalidStateError):
        server.send_text("too late")


def test_bad_utf8_fails_before_the_frame_is_complete() -> None:
    # Autobahn 6.4.3: the first bytes of a text frame are enough to fail it.
    server = ServerProtocol()
    server.receive_data(
        frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" + b"x" * 100)[:24]
    )
    assert server.error is not None and server.error.close_code == 1007  # type: ignore[attr-defined]
    assert unmask_frames(sent(server))[0][0] == 8


def test_a_large_frame_gets_room_as_it_arrives_then_at_its_header_once_proven() -> None:
    # A header is a promise, not bytes: the first 1 MB frame's room grows with what
    # arrived (never past 4 times that, 64 KiB at least) and the rest is read in place;
    # the next one as long gets all its room at its header. After each, a drained read
    # gives 4 KiB again.
    server = ServerProtocol()
    wire = frame(2, b"q" * 1_000_000)
    for first in (True, False):
        pos, sizes = 0, []
        while pos < len(wire):
            view = server.get_buffer()
            sizes.append(server.buffer_size)
            if first:
                assert server.buffer_size <= max(65536, 4 * pos) + 8192
            n = min(len(view), len(wire) - pos)
            view[:n] = wire[pos : pos + n]
            server.buffer_updated(n)
            pos += n
        assert sizes[0] == 4096
        assert 1_000_000 <= sizes[-1] <= 1_000_000 + 8192
        if first:
            assert len(set(sizes)) <= 5  # a few steps of 4x, no more
        else:
            assert len(set(sizes[1:])) == 1  # grown once, every read in place
        assert server.events_received() == [BinaryMessage(b"q" * 1_000_000)]
        small = frame(1, b"hi")
        view = server.get_buffer()
        assert len(view) == 4096 and server.buffer_size == 4096
        view[: len(small)] = small
        server.buffer_updated(len(small))
        assert server.events_received() == [TextMessage("hi")]


def _joined(events: list[Event]) -> bytes:
    # The data of a binary message's events, in one.
    pieces = []
    for event in events:
        assert isinstance(event, (Chunk, BinaryMessage))
        pieces.append(bytes(event.data))
    return b"".join(pieces)


def test_a_message_read_in_place_can_go_on_in_pieces_at_any_point() -> None:
    # wsio.sync reads a whole message into its own bytes (direct_max) and, when
    # recv_streaming starts in the middle of it, takes what arrived and the rest in
    # pieces: also while its room is still growing in the read buffer (the first
    # large message of a connection), and once it is read straight into its bytes.
    payload = bytes(range(256)) * 8192  # 2 MiB
    wire = frame(2, payload)
    for cut in (100_000, 1_500_000):
        for proven in (False, True):
            server = ServerProtocol(streaming=True)
            server.direct_max = 1 << 26
            if proven:  # a message as long went through whole before
                server.receive_data(wire)
                assert _joined(server.events_received()) == payload
            got = bytearray()
            pos = 0
            while pos < cut:
                view = server.get_buffer()
                n = min(len(view), cut - pos)
                view[:n] = wire[pos : pos + n]
                server.buffer_updated(n)
                pos += n
                got += _joined(server.events_received())
            first = server.leave_direct()
            assert (first is None) == (bool(got) or pos == len(wire))
            got += first or b""
            assert server.leave_direct() is None  # now in pieces
            server.receive_data(wire[pos:])
            got += _joined(server.events_received())
            assert bytes(got) == payload


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 20_000), min_size=2, max_size=6),
    cuts=st.lists(st.integers(1, 9_000), min_size=1, max_size=8),
)
def test_streamed_chunks_of_frames_read_whole_keep_their_bytes(
    sizes: list[int], cuts: list[int]
) -> None:
    # A streaming consumer that also asks for whole frames: every Chunk view taken
    # from one receive_data stays intact until the next, even when a later frame in
    # the same bytes grows or compacts the buffer for itself.
    server = ServerProtocol(streaming=True)
    server.whole_frame_max = 1 << 20
    payloads = [bytes([i + 1]) * n for i, n in enumerate(sizes)]
    wire = b"".join(frame(2, p) for p in payloads)
    got, pos, i = bytearray(), 0, 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        i += 1
        server.receive_data(wire[pos : pos + n])
        pos += n
        got += b"".join(bytes(e.data) for e in server.events_received() if isinstance(e, Chunk))
    assert bytes(got) == b"".join(payloads)


def test_full_reads_of_small_frames_grow_the_buffer_to_a_cap() -> None:
    server = ServerProtocol()
    wire = frame(2, b"q" * 100) * 10_000
    pos, sizes = 0, []
    while pos < len(wire):
        view = server.get_buffer()
        n = min(len(view), len(wire) - pos)
        view[:n] = wire[pos : pos + n]
        server.buffer_updated(n)
        pos += n
        sizes.append(server.buffer_size)
    assert sizes[0] == 4096 and max(sizes) == 262144  # doubled on full reads, capped
    assert len(server.events_received()) == 10_000


def test_bad_utf8_in_a_frame_read_whole_fails_before_the_frame_is_in() -> None:
    # RFC 6455 §8.1, Autobahn 6.4: the bytes of a frame taken whole are checked as
    # they arrive, not once it is complete.
    server = ServerProtocol()
    wire = frame(1, b"ok" + b"\xff" + b"x" * 500_000)
    server.receive_data(wire[:4096])
    assert server.error is not None and server.error.close_code == 1007  # type: ignore[attr-defined]


# -- the C-level API's Python-visible half (protocol.pxd) --------------------------------


def test_send_data_is_send_text_binary_and_continuation_by_opcode() -> None:
    by_name, by_opcode = ServerProtocol(), ServerProtocol()
    by_name.send_text("a", fin=False)
    by_name.send_continuation(b"b")
    by_name.send_binary(b"c")
    by_opcode.send_data(1, b"a", False)
    by_opcode.send_data(0, b"b")
    by_opcode.send_data(2, b"c")
    assert sent(by_opcode) == sent(by_name)
    with pytest.raises(LocalProtocolError):
        by_opcode.send_data(9, b"not a data frame")


def test_fail_with_error_answers_a_violation_with_its_code_and_a_bug_with_1011() -> None:
    violated, broken = ServerProtocol(), ServerProtocol()
    violated.fail_with_error(ProtocolError("bad", close_code=1007))
    broken.fail_with_error(RuntimeError("a callback's bug"))
    assert unmask_frames(sent(violated))[0][3][:2] == (1007).to_bytes(2, "big")
    assert unmask_frames(sent(broken))[0][3][:2] == (1011).to_bytes(2, "big")
    assert isinstance(broken.error, RuntimeError) and broken.close_expected()
    broken.fail_with_error(ProtocolError("later"))  # once CLOSED, nothing changes
    assert isinstance(broken.error, RuntimeError) and sent(broken) == b""


def test_a_memoryview_payload_is_sent_as_its_bytes_whatever_its_format() -> None:
    import array

    words = array.array("i", range(300))
    for sender, receiver in (
        (ClientProtocol(), ServerProtocol()),
        (ServerProtocol(), ClientProtocol()),
    ):
        sender.send_binary(memoryview(words))
        sender.send_binary(memoryview(words)[:3])
        for buf in sender.data_to_send():
            receiver.receive_data(buf)
        assert receiver.events_received() == [
            BinaryMessage(words.tobytes()),
            BinaryMessage(words[:3].tobytes()),
        ]


# -- large messages: read into their own bytes, text built from checked UTF-8 -----------

_SCRIPTS = {
    "ascii": "plain ascii text ",
    "latin-1": "déjà vu, ça va ",
    "bmp": "wsio é ü — ok 漢字 ",
    "astral": "emoji 😀 and 𝄞 ",
}


def _feed_in_reads(
    server: ServerProtocol, wire: bytes, cuts: list[int], into: bool
) -> list[object]:
    # Through receive_data (copies) or get_buffer/buffer_updated (read in place), in
    # reads of the sizes in cuts, taken in turn.
    events: list[object] = []
    pos, i = 0, 0
    while pos < len(wire):
        n = min(cuts[i % len(cuts)], len(wire) - pos)
        i += 1
        if into:
            view = server.get_buffer()
            n = min(n, len(view))
            view[:n] = wire[pos : pos + n]
            server.buffer_updated(n)
        else:
            server.receive_data(wire[pos : pos + n])
        pos += n
        events += server.events_received()
    return events


@pytest.mark.parametrize("into", [False, True], ids=["receive_data", "get_buffer"])
@pytest.mark.parametrize("cuts", [[65536], [1, 70_000, 3], [300_001]])
def test_large_messages_arrive_whole_however_the_reads_fall(cuts: list[int], into: bool) -> None:
    # Large whole messages, with small frames before, between and after them in the
    # same reads: every event is the message sent, as bytes or str, in order.
    texts = [(_SCRIPTS[name] * 20_000)[: 100_000 + k] for k, name in enumerate(_SCRIPTS)]
    blob = bytes(range(256)) * 800
    wire = frame(1, b"first") + frame(2, blob) + frame(9, b"p")
    wire += b"".join(frame(1, t.encode()) for t in texts) + frame(2, blob[:70_000])
    for decode_text in (True, False):
        server = ServerProtocol(decode_text=decode_text)
        events = _feed_in_reads(server, wire, cuts, into)
        as_text: Callable[[str], str | bytes] = (
            (lambda t: t) if decode_text else (lambda t: t.encode())
        )
        assert events == [
            TextMessage(as_text("first")),
            BinaryMessage(blob),
            Ping(b"p"),
            *(TextMessage(as_text(t)) for t in texts),
            BinaryMessage(blob[:70_000]),
        ]
        for event in events:
            assert type(event.data) in (bytes, str)  # type: ignore[attr-defined]
        assert server.error is None and sent(server) == b"\x8a\x01p"


@pytest.mark.parametrize("name", list(_SCRIPTS))
def test_fragmented_text_of_every_width_becomes_the_same_str(name: str) -> None:
    text = _SCRIPTS[name] * 3000
    data = text.encode()
    cut = [0, 7, 5000, 5001, 30_000, len(data)]  # some cuts fall inside characters
    wire = b"".join(
        frame(1 if a == 0 else 0, data[a:b], fin=b == len(data)) for a, b in itertools.pairwise(cut)
    )
    server = ServerProtocol()
    assert _feed_in_reads(server, wire, [4096], False) == [TextMessage(text)]


@settings(max_examples=40, deadline=None)
@given(unit=st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=200))
def test_text_over_a_piece_becomes_the_str_sent(unit: str) -> None:
    # Any code points (surrogates are not UTF-8), repeated past 4 KiB (where the str is
    # built from the bytes checked as they arrived): whole, and in 3 reads.
    text = unit * (4097 // len(unit.encode()) + 1)
    data = text.encode()
    for cuts in ([len(data) + 20], [len(data) // 3 + 1]):
        server = ServerProtocol()
        assert _feed_in_reads(server, frame(1, data), cuts, False) == [TextMessage(text)]


@pytest.mark.parametrize("decode_text", [True, False])
@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82"],
    ids=["ff", "surrogate", "overlong", "cut"],
)
def test_bad_utf8_in_a_large_text_message_fails_with_1007(bad: bytes, decode_text: bool) -> None:
    # At the start, inside, and at the very end (a character cut off by the frame's end).
    for payload in (
        bad + b"x" * 200_000,
        b"x" * 100_000 + bad + b"x" * 100_000,
        b"x" * 200_000 + bad,
    ):
        server = ServerProtocol(decode_text=decode_text)
        _feed_in_reads(server, frame(1, payload), [65536], True)
        assert server.error is not None and server.error.close_code == 1007  # type: ignore[attr-defined]
        assert unmask_frames(sent(server))[0][0] == 8


def test_a_large_message_over_the_limit_fails_at_its_header() -> None:
    # The limits are checked before anything is allocated for the message.
    server = ServerProtocol(max_message_size=100_000)
    server.receive_data(frame(2, b"z" * 100_001)[:14])
    assert server.error is not None and server.error.close_code == 1009  # type: ignore[attr-defined]
    assert server.buffer_size <= 4096
