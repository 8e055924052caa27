"""The incremental HTTP/1.1 head parser: syntax, limits, splits, trailing bytes."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, TypedDict

import pytest
from hypothesis import given, strategies as st

from wsio._engine.http import (
    DEFAULT_MAX_SIZE,
    FIRST_BUFFER_SIZE,
    HeadError,
    HeadParser,
    HeadTooLargeError,
    LineTooLongError,
    MalformedHeadError,
    RequestParser,
    ResponseParser,
    TooManyHeadersError,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

REQUEST = (
    b"GET /chat?x=1 HTTP/1.1\r\n"
    b"Host: server.example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"X-Empty:\r\n"
    b"X-Spaces: \t a b \t\r\n"
    b"\r\n"
)

RESPONSE = (
    b"HTTP/1.1 101 Switching Protocols\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
    b"\r\n"
)

EXPECTED_HEADERS = [
    (b"Host", b"server.example.com"),
    (b"Upgrade", b"websocket"),
    (b"Connection", b"Upgrade"),
    (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"Sec-WebSocket-Version", b"13"),
    (b"X-Empty", b""),
    (b"X-Spaces", b"a b"),
]


class _Limits(TypedDict, total=False):
    max_line: int
    max_headers: int
    max_size: int


def _parse_request(head: bytes, **limits: Unpack[_Limits]) -> RequestParser:
    parser = RequestParser(**limits)
    parser.feed(head)
    return parser


def test_request_whole() -> None:
    parser = RequestParser()
    assert parser.feed(REQUEST) == len(REQUEST)
    assert parser.complete
    assert parser.method == b"GET"
    assert parser.target == b"/chat?x=1"
    assert parser.version == (1, 1)
    assert parser.start_line == b"GET /chat?x=1 HTTP/1.1"
    assert parser.headers() == EXPECTED_HEADERS
    assert len(parser) == len(EXPECTED_HEADERS)
    assert parser.end == len(REQUEST) == parser.filled
    assert bytes(parser.trailing()) == b""


def test_request_one_byte_at_a_time_with_recv_into() -> None:
    parser = RequestParser()
    done = False
    for i, byte in enumerate(REQUEST):
        assert not done
        free = parser.free()
        free[0] = byte
        done = parser.advance(1)
        assert done is (i == len(REQUEST) - 1)
    assert parser.headers() == EXPECTED_HEADERS


@given(st.lists(st.integers(min_value=0, max_value=len(REQUEST) + 20), max_size=8))
def test_request_any_split(cuts: list[int]) -> None:
    data = REQUEST + b"\x81\x05hello"
    parser = RequestParser()
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for a, b in itertools.pairwise(points):
        assert parser.feed(data[a:b]) == b - a
    assert parser.complete
    assert parser.headers() == EXPECTED_HEADERS
    assert bytes(parser.trailing()) == b"\x81\x05hello"


def test_views_and_lookups() -> None:
    parser = _parse_request(REQUEST)
    assert isinstance(parser.name(0), memoryview)
    assert bytes(parser.name(0)) == b"Host"
    assert bytes(parser.value(0)) == b"server.example.com"
    assert parser.lower_name(3) == b"sec-websocket-key"
    assert parser.value_bytes(4) == b"13"
    assert parser.get(b"HOST") == b"server.example.com"
    assert parser.get(b"sec-websocket-version") == b"13"
    assert parser.get(b"missing") is None
    twice = _parse_request(b"GET / HTTP/1.1\r\nA: 1\r\nb: 2\r\na: 3\r\n\r\n")
    assert twice.get_all(b"A") == [b"1", b"3"]


def test_trailing_bytes_are_kept_and_feed_reports_what_it_took() -> None:
    data = REQUEST + b"frames"
    parser = RequestParser(buffer=bytearray(len(REQUEST) + 2))
    taken = parser.feed(data)
    assert taken == len(REQUEST) + 2
    assert parser.complete
    assert bytes(parser.trailing()) + data[taken:] == b"frames"


def test_reset_reuses_the_buffer() -> None:
    parser = _parse_request(REQUEST + b"tail")
    buffer = parser.buffer
    parser.reset()
    assert not parser.complete and len(parser) == 0 and parser.end == -1
    assert bytes(parser.trailing()) == b""
    parser.feed(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
    assert parser.target == b"/again"
    assert parser.buffer is buffer


def test_bare_lf_and_leading_empty_lines() -> None:
    # RFC 7230 §3.5: a single LF may end a line; empty lines before a request are skipped.
    parser = _parse_request(b"\r\n\nGET / HTTP/1.1\nHost: a\r\nX: y\n\n")
    assert parser.complete
    assert parser.headers() == [(b"Host", b"a"), (b"X", b"y")]


@pytest.mark.parametrize(
    ("head", "version"),
    [
        (b"GET / HTTP/1.0\r\n\r\n", (1, 0)),
        (b"GET / HTTP/1.2\r\n\r\n", (1, 2)),
        (b"GET / HTTP/2.0\r\n\r\n", (2, 0)),
        (b"GET / HTTP/42.1092\r\n\r\n", (42, 1092)),
        (b"PRI * HTTP/2.0\r\n\r\n", (2, 0)),
    ],
)
def test_versions_parse(head: bytes, version: tuple[int, int]) -> None:
    assert _parse_request(head).version == version


MALFORMED_REQUESTS = [
    b"GET / HTTP/1.1 extra\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / http/1.1\r\n\r\n",
    b"GET / HTTP/1\r\n\r\n",
    b"GET / HTTP/1.1.1\r\n\r\n",
    b"GET / HTTP/12345.1\r\n\r\n",
    b"G(T / HTTP/1.1\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\n continued\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\n\tcontinued\r\n\r\n",
    b"GET / HTTP/1.1\r\nA : 1\r\n\r\n",
    b"GET / HTTP/1.1\r\n: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nA\x00: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\x002\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r2\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\x1b\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\n\xff: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\r\n\r\n",
]


@pytest.mark.parametrize("head", MALFORMED_REQUESTS)
def test_malformed_requests(head: bytes) -> None:
    with pytest.raises(MalformedHeadError) as info:
        _parse_request(head)
    assert info.value.status == 400


def test_obs_text_in_value_is_allowed() -> None:
    # RFC 7230 §3.2.6: obs-text (0x80-0xFF) may appear in field values.
    assert _parse_request(b"GET / HTTP/1.1\r\nA: caf\xe9\r\n\r\n").get(b"a") == b"caf\xe9"


def test_request_line_too_long_is_414_even_dripped() -> None:
    parser = RequestParser(max_line=100)
    head = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n"
    with pytest.raises(LineTooLongError) as info:
        for i in range(len(head)):
            parser.feed(head[i : i + 1])
    assert info.value.status == 414
    # Raised as soon as the line crossed the limit, not at its end.
    assert parser.filled == 101


def test_header_line_too_long_is_431() -> None:
    with pytest.raises(LineTooLongError) as info:
        _parse_request(b"GET / HTTP/1.1\r\nCookie: " + b"x" * 9000 + b"\r\n\r\n")
    assert info.value.status == 431


def test_one_mebibyte_header_line_in_chunks() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nX-Big: ")
    fed = 0
    with pytest.raises(LineTooLongError) as info:
        while fed < 1 << 20:
            parser.feed(b"y" * 1000)
            fed += 1000
    assert info.value.status == 431
    assert fed < 10_000


def test_ten_thousand_headers_is_431_after_the_limit() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 10_000 + b"\r\n"
    parser = RequestParser()
    with pytest.raises(TooManyHeadersError) as info:
        for i in range(0, len(head), 512):
            parser.feed(head[i : i + 512])
    assert info.value.status == 431
    assert len(parser) == 128
    assert parser.filled < 2048


def test_max_headers_is_inclusive() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 5 + b"\r\n"
    assert len(_parse_request(head, max_headers=5)) == 5
    with pytest.raises(TooManyHeadersError):
        _parse_request(head, max_headers=4)


def test_head_too_large_is_431() -> None:
    head = b"GET / HTTP/1.1\r\n" + (b"X-A: " + b"b" * 200 + b"\r\n") * 100 + b"\r\n"
    with pytest.raises(HeadTooLargeError) as info:
        _parse_request(head, max_headers=1000, max_size=16384)
    assert info.value.status == 431
    # Exactly at the limit is fine.
    exact = b"GET / HTTP/1.1\r\nX: " + b"a" * 100 + b"\r\n\r\n"
    assert _parse_request(exact, max_size=len(exact)).complete
    with pytest.raises(HeadTooLargeError):
        _parse_request(exact, max_size=len(exact) - 1)


def test_a_head_larger_than_the_first_buffer_grows_it_up_to_max_size() -> None:
    # A parser starts with 4 KiB (what a handshake in flight holds) and doubles only for
    # a head that fills it; a cookie-heavy head of 20 KB parses whole, read in any split.
    cookie = b"Cookie: " + b"c" * 4000 + b"\r\n"
    head = REQUEST[:-2] + cookie * 5 + b"\r\n"
    for step in (1, 1000, 4096, len(head)):
        parser = RequestParser()
        assert len(parser.buffer) == FIRST_BUFFER_SIZE
        pos = 0
        while not parser.complete:
            free = parser.free()
            take = min(step, len(free), len(head) - pos)
            free[:take] = head[pos : pos + take]
            pos += take
            parser.advance(take)
        assert pos == len(head) == parser.end
        assert parser.get_all(b"cookie") == [b"c" * 4000] * 5
        assert parser.headers()[: len(EXPECTED_HEADERS)] == EXPECTED_HEADERS
        assert FIRST_BUFFER_SIZE < len(parser.buffer) <= DEFAULT_MAX_SIZE
        parser.reset()  # a pooled parser does not keep a big head's room
        assert len(parser.buffer) == FIRST_BUFFER_SIZE
        assert parser.feed(REQUEST) == len(REQUEST) and parser.complete
    # feed() grows as well; the limit still holds past the first buffer.
    assert _parse_request(head).get_all(b"cookie") == [b"c" * 4000] * 5
    huge = b"GET / HTTP/1.1\r\n" + (b"X-A: " + b"b" * 1000 + b"\r\n") * 70 + b"\r\n"
    with pytest.raises(HeadTooLargeError):
        _parse_request(huge, max_headers=1000)
    parser = RequestParser(max_headers=1000)
    pos = 0
    with pytest.raises(HeadTooLargeError):
        while True:
            free = parser.free()
            assert len(free) > 0
            free[:] = huge[pos : pos + len(free)]
            pos += len(free)
            parser.advance(len(free))
    assert len(parser.buffer) == DEFAULT_MAX_SIZE


def test_head_too_large_with_a_larger_buffer() -> None:
    parser = RequestParser(max_size=64, buffer=bytearray(1024))
    with pytest.raises(HeadTooLargeError):
        parser.feed(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 20 + b"\r\n")


def test_advance_past_the_buffer_is_a_caller_error() -> None:
    parser = RequestParser(max_size=32)
    with pytest.raises(ValueError, match="past the end"):
        parser.advance(33)
    with pytest.raises(ValueError):
        HeadParser(max_line=1)


def test_response() -> None:
    parser = ResponseParser()
    parser.feed(RESPONSE + b"\x81\x02hi")
    assert parser.complete
    assert parser.status == 101
    assert parser.reason == b"Switching Protocols"
    assert parser.version == (1, 1)
    assert parser.get(b"sec-websocket-accept") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert bytes(parser.trailing()) == b"\x81\x02hi"


@pytest.mark.parametrize(
    ("line", "status", "reason"),
    [
        (b"HTTP/1.1 101", 101, b""),
        (b"HTTP/1.1 404 ", 404, b""),
        (b"HTTP/1.0 400 Bad  Request x", 400, b"Bad  Request x"),
        (b"HTTP/1.1 200 caf\xe9", 200, b"caf\xe9"),
    ],
)
def test_status_lines(line: bytes, status: int, reason: bytes) -> None:
    parser = ResponseParser()
    parser.feed(line + b"\r\n\r\n")
    assert (parser.status, parser.reason) == (status, reason)


@pytest.mark.parametrize(
    "line",
    [
        b"HTTP/1.1 1010 x",
        b"HTTP/1.1 10 x",
        b"HTTP/1.1 abc x",
        b"HTTP/1.1  101 x",
        b"HTTP/1.1",
        b"HTTPS/1.1 101 x",
        b"HTTP/1.1 101 a\x00b",
        b"",
    ],
)
def test_bad_status_lines(line: bytes) -> None:
    with pytest.raises(MalformedHeadError):
        ResponseParser().feed(line + b"\r\n\r\n")


def test_response_long_status_line_is_431() -> None:
    with pytest.raises(LineTooLongError) as info:
        ResponseParser(max_line=64).feed(b"HTTP/1.1 200 " + b"x" * 100)
    assert info.value.status == 431


@given(st.binary(max_size=300), st.booleans())
def test_arbitrary_bytes_parse_or_raise_head_error(data: bytes, response: bool) -> None:
    parser = HeadParser(response, max_size=256, max_line=64, max_headers=4)
    try:
        for i in range(0, len(data), 7):
            parser.feed(data[i : i + 7])
            if parser.complete:
                break
    except HeadError as exc:
        assert exc.status in (400, 414, 431)


NAMES = (b"host", b"upgrade", b"sec-websocket-key", b"origin")


@given(st.sampled_from([*NAMES, b"hostname", b"hos", b"x-a", b"or!gin", b"0rigin"]), st.data())
def test_find_name_ignores_ascii_case_only(name: bytes, data: st.DataObject) -> None:
    # Each letter in either case, as a peer may send it; other token bytes as they are.
    cased = bytes(data.draw(st.sampled_from([c, c ^ 0x20])) if 97 <= c <= 122 else c for c in name)
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\n" + cased + b": v\r\n\r\n")
    expected = NAMES.index(name) if name in NAMES else -1
    assert parser.find_name(0, NAMES) == expected
    assert bytes(parser.name(0)) == cased  # looked up in place, nothing rewritten
