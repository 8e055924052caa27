"""Header-value scanners: tokens, options with quoted strings, cookies, the accept key."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, strategies as st

from wsio._engine.httphead import (
    ABSENT,
    HeaderSyntaxError,
    Option,
    accept_key,
    check_value,
    format_options,
    has_token,
    is_token,
    is_valid_key,
    parse_options,
    parse_tokens,
    scan_cookies,
)
from wsio.exceptions import LocalProtocolError


def test_accept_key_rfc6455_vector() -> None:
    # RFC 6455 §1.3
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("dGhlIHNhbXBsZSBub25jZQ==", True),
        (b"dGhlIHNhbXBsZSBub25jZQ==", True),
        (memoryview(b"AAAAAAAAAAAAAAAAAAAAAA=="), True),
        ("dGhlIHNhbXBsZSBub25jZQ", False),  # no padding
        ("dGhlIHNhbXBsZSBub25jZQ=", False),
        ("dGhlIHNhbXBsZSBub25jZR==", False),  # non-zero padding bits
        (base64.b64encode(b"x" * 15).decode(), False),
        (base64.b64encode(b"x" * 17).decode(), False),
        ("dGhlIHNhbXBsZSBub25j!Q==", False),
        ("dGhlIHNhbXBsZSBub25jZ\xe9==", False),
        ("", False),
        ("A" * 10_000_000, False),
    ],
)
def test_is_valid_key(key: str | bytes, valid: bool) -> None:
    assert is_valid_key(key) is valid


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("a", ["a"]),
        (" a , b,c ", ["a", "b", "c"]),
        (",, a,,\t,b,", ["a", "b"]),
        ("", []),
        (b"chat, superchat", ["chat", "superchat"]),
        (memoryview(b"x"), ["x"]),
    ],
)
def test_parse_tokens(value: str | bytes, tokens: list[str]) -> None:
    assert parse_tokens(value) == tokens


@pytest.mark.parametrize("value", ["a b", "a, =", "a;b", b"\xff", "a, b c", '"a"'])
def test_parse_tokens_rejects(value: str | bytes) -> None:
    with pytest.raises(HeaderSyntaxError):
        parse_tokens(value)


@pytest.mark.parametrize(
    ("value", "token", "found"),
    [
        ("Upgrade", "upgrade", True),
        ("keep-alive, Upgrade", "upgrade", True),
        ("keep-alive,UPGRADE ", "upgrade", True),
        (b"keep-alive, Upgrade", "upgrade", True),
        (b"WebSocket", "websocket", True),
        (memoryview(b"websocket"), "websocket", True),
        ("keep-alive", "upgrade", False),
        ("upgraded", "upgrade", False),
        ("h2c", "websocket", False),
        (b"", "websocket", False),
        (b"\xff\xfe", "websocket", False),
    ],
)
def test_has_token(value: str | bytes, token: str, found: bool) -> None:
    assert has_token(value, token) is found


def test_parse_options_offer() -> None:
    options = parse_options('permessage-deflate; client_max_window_bits, x; a="q\\"s" ;b = 1,, y')
    assert options == [
        Option("permessage-deflate", (("client_max_window_bits", None),)),
        Option("x", (("a", 'q"s'), ("b", "1"))),
        Option("y"),
    ]
    first = options[0]
    assert first.get("client_max_window_bits") is None
    assert first.get("CLIENT_MAX_WINDOW_BITS") is None
    assert first.get("server_max_window_bits") is ABSENT
    assert not ABSENT
    assert "client_max_window_bits" in first
    assert "server_no_context_takeover" not in first
    assert options[1].get("a") == 'q"s'


def test_parse_options_bytes_and_empty() -> None:
    assert parse_options(b"a;b=c") == [Option("a", (("b", "c"),))]
    assert parse_options(memoryview(b" , ")) == []
    assert parse_options('a; b="x,y;z"') == [Option("a", (("b", "x,y;z"),))]


@pytest.mark.parametrize(
    "value",
    [
        "=[",  # gobwas's malformed case
        "a; b=",
        "a; =c",
        "a;",
        'a; b="unterminated',
        'a; b="\\',
        'a; b="x"y',
        "a b",
        "a; b=c d",
        'a; b="\x01"',
        "\xe9",
        b"a; b=\xff",
        "a; b=c; ",
    ],
)
def test_parse_options_rejects(value: str | bytes) -> None:
    with pytest.raises(HeaderSyntaxError):
        parse_options(value)


def test_option_str_quotes_where_needed() -> None:
    option = Option("x", (("a", "q s"), ("b", "tok"), ("c", None), ("d", 'q"\\')))
    assert str(option) == 'x; a="q s"; b=tok; c; d="q\\"\\\\"'
    assert parse_options(str(option)) == [option]
    assert format_options([Option("a"), option]) == "a, " + str(option)
    assert format_options([]) == ""


@pytest.mark.parametrize(
    "option",
    [
        Option("a b"),
        Option("a\r\nX-Injected: 1"),
        Option("a", (("b\n", None),)),
        Option("a", (("b", "1\r\nX-Injected: 1"),)),
        Option("a", (("b", "\x00"),)),
    ],
)
def test_option_str_rejects_injection(option: Option) -> None:
    with pytest.raises(LocalProtocolError):
        str(option)


def test_check_value() -> None:
    assert check_value("a\tb c") == "a\tb c"
    for bad in ("a\r\nb", "a\nb", "a\x00", "\x7f"):
        with pytest.raises(LocalProtocolError):
            check_value(bad)


_param_value = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=20,
)
_token = st.text(alphabet="abcXYZ019!#$%&'*+-.^_`|~", min_size=1, max_size=12)


@given(
    st.lists(
        st.builds(
            Option,
            _token,
            st.lists(st.tuples(_token, st.none() | _param_value), max_size=4).map(tuple),
        ),
        max_size=5,
    )
)
def test_options_round_trip(options: list[Option]) -> None:
    assert parse_options(format_options(options)) == options


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_parsers_raise_only_syntax_errors(value: str | bytes) -> None:
    try:
        parse_options(value)
    except HeaderSyntaxError:
        pass
    try:
        parse_tokens(value)
    except HeaderSyntaxError:
        pass
    try:
        list(scan_cookies(value))
    except HeaderSyntaxError:
        pass
    has_token(value, "upgrade")


def test_scan_cookies() -> None:
    assert list(scan_cookies('a=1; b="two"; c=; d=x=y')) == [
        ("a", "1"),
        ("b", "two"),
        ("c", ""),
        ("d", "x=y"),
    ]
    assert list(scan_cookies(b"session=abc;  theme=dark ;")) == [
        ("session", "abc"),
        ("theme", "dark"),
    ]
    assert list(scan_cookies("")) == []


@pytest.mark.parametrize("value", ["a", "=1", "a b=1", "a=1 2", 'a="1', "a=x,y", "a=\\"])
def test_scan_cookies_rejects(value: str) -> None:
    with pytest.raises(HeaderSyntaxError):
        list(scan_cookies(value))


def test_is_token() -> None:
    assert is_token("permessage-deflate")
    assert not is_token("")
    assert not is_token("a b")


@pytest.mark.parametrize(
    ("function", "make"),
    [
        # CVE-2021-32640: 'b' + spaces + 'x' in Sec-WebSocket-Protocol.
        (parse_tokens, lambda n: "b" + " " * n + "x"),
        (parse_tokens, lambda n: "," * n),
        # GHSA-g78m-2chm-r7qv: an unterminated quoted string of backslash pairs.
        (parse_options, lambda n: 'a; b="' + "\\c" * n),
        (parse_options, lambda n: "a" + "; b" * n),
        (lambda v: list(scan_cookies(v)), lambda n: "a=b; " * n),
    ],
)
def test_scanners_are_fast_on_hostile_values(function: object, make: object) -> None:
    # Not a timing assertion on the machine's speed: 200k hostile characters must be
    # handled at all (a quadratic or exponential scanner would not return for minutes).
    try:
        function(make(200_000))  # type: ignore[operator]
    except HeaderSyntaxError:
        pass
