"""Header-value scanners and builders for the opening handshake (the httphead part).

Everything here is linear in the length of its input: values are split with ``str``
methods and single-character-class regexes that cannot backtrack more than one step,
never with nested quantifiers (CVE-2021-32640 and GHSA-g78m-2chm-r7qv were ReDoS in
exactly these headers).

Values may be given as ``str`` or as bytes-like objects (``bytes``, ``bytearray``,
``memoryview`` views into a read buffer): bytes are decoded as Latin-1, so every byte
maps to one character and nothing raises :class:`UnicodeDecodeError`; a byte outside
the grammar (0x80-0xFF in a token, a control character) then fails the syntax check.

Malformed input raises :class:`HeaderSyntaxError` (a :class:`ValueError`). Values the
library *writes* (:meth:`Option.__str__`, :func:`format_options`, :func:`check_value`)
raise :class:`~wsio.exceptions.LocalProtocolError` on CR, LF, NUL or any other control
character, so a hook cannot split a response (CVE-2023-37276).
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from wsio.exceptions import LocalProtocolError

__all__ = [
    "ABSENT",
    "Absent",
    "HeaderSyntaxError",
    "Option",
    "accept_key",
    "accept_key_bytes",
    "check_value",
    "format_options",
    "has_token",
    "is_token",
    "is_valid_key",
    "parse_options",
    "parse_tokens",
    "scan_cookies",
]

#: RFC 6455 §1.3: the GUID appended to the key before hashing.
WEBSOCKET_GUID: Final = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: What the scanners accept: a str, or bytes-like (decoded as Latin-1).
Text: TypeAlias = str | bytes | bytearray | memoryview

# RFC 7230 §3.2.6:
#   token = 1*tchar
#   tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#           "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 7230 §3.2.6:
#   qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
_QDTEXT = re.compile(r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]*")
#   quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
_QUOTED_PAIR_CHAR = re.compile(r"[\t \x21-\x7e\x80-\xff]")
# RFC 7230 §3.2: field-value = *( field-content / obs-fold ); no CTL but HTAB.
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 6265 §4.1.1:
#   cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")

_OWS = " \t"
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# The characters of the alphabet whose 6 bits end in 4 zero bits (values 0, 16, 32, 48).
_LAST_OF_16 = frozenset(b"AQgw")


class HeaderSyntaxError(ValueError):
    """A header value does not follow its grammar (a server answers it with 400)."""


class Absent(enum.Enum):
    """The type of :data:`ABSENT`."""

    ABSENT = "ABSENT"

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> Literal[False]:
        return False


#: What :meth:`Option.get` returns for a parameter that is not there at all (``None``
#: means "present without a value", like ``client_max_window_bits`` in an offer).
ABSENT: Final = Absent.ABSENT


def _text(value: Text) -> str:
    if isinstance(value, str):
        return value
    return bytes(value).decode("latin-1")


def is_token(value: str) -> bool:
    """True if ``value`` is a non-empty RFC 7230 token."""
    return _TOKEN.fullmatch(value) is not None


def check_value(value: str, what: str = "header value") -> str:
    """Return ``value`` if it is safe to write into a header, else raise LocalProtocolError.

    RFC 7230 §3.2: a field value has no control characters other than HTAB; CR, LF and
    NUL in particular would let the value end the header and inject another.
    """
    if _CTL.search(value) is not None:
        raise LocalProtocolError(f"{what} contains a control character: {value[:64]!r}")
    return value


def _quote(value: str) -> str:
    # RFC 7230 §3.2.6: a parameter value is a token or a quoted-string; '"' and '\'
    # inside a quoted-string travel as quoted-pairs.
    if _TOKEN.fullmatch(value) is not None:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Option:
    """One offered or accepted extension: a name and its ordered parameters.

    ``parameters`` is a tuple of ``(name, value)`` where ``value`` is None for a bare
    parameter (``client_max_window_bits``) and a string otherwise (quotes removed).
    """

    name: str
    parameters: tuple[tuple[str, str | None], ...] = ()

    def get(self, key: str) -> str | Absent | None:
        """The first value of parameter ``key`` (any case): a str, None if it has no value,
        or :data:`ABSENT` if the option has no such parameter."""
        lowered = key.lower()
        for name, value in self.parameters:
            if name.lower() == lowered:
                return value
        return ABSENT

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not ABSENT

    def __str__(self) -> str:
        """The option in header syntax, values quoted where they are not tokens.

        Raises LocalProtocolError for a name that is not a token or a value with a control
        character (so that nothing written can split the header)."""
        if _TOKEN.fullmatch(self.name) is None:
            raise LocalProtocolError(f"extension name is not a token: {self.name!r}")
        parts = [self.name]
        for key, value in self.parameters:
            if _TOKEN.fullmatch(key) is None:
                raise LocalProtocolError(f"extension parameter is not a token: {key!r}")
            if value is None:
                parts.append(key)
            else:
                check_value(value, "extension parameter value")
                parts.append(f"{key}={_quote(value)}")
        return "; ".join(parts)


def format_options(options: Iterable[Option]) -> str:
    """``Sec-WebSocket-Extensions`` value for ``options``: ``a; x=1, b`` (RFC 6455 §9.1)."""
    return ", ".join([str(option) for option in options])


def parse_tokens(value: Text) -> list[str]:
    """The tokens of a comma-separated list (``#token``), OWS trimmed, empty items skipped.

    RFC 7230 §7: "a recipient MUST accept lists that satisfy the following syntax:
    ``#element => [ ( "," / element ) *( OWS "," [ OWS element ] ) ]``" (empty elements are
    allowed). Raises HeaderSyntaxError for an element that is not a token.
    """
    tokens: list[str] = []
    for item in _text(value).split(","):
        item = item.strip(_OWS)
        if not item:
            continue
        if _TOKEN.fullmatch(item) is None:
            raise HeaderSyntaxError(f"not a token: {item[:64]!r}")
        tokens.append(item)
    return tokens


def has_token(value: Text, token: str) -> bool:
    """True if the comma list ``value`` has an element equal to ``token``, ignoring case.

    For ``Connection: keep-alive, Upgrade`` and ``Upgrade: websocket`` (RFC 6455 §4.2.1:
    both are compared "ASCII case-insensitive"). Elements are compared whole after OWS
    trimming; nothing raises.
    """
    if isinstance(value, str):
        wanted_str = token.lower()
        return any(item.strip(_OWS).lower() == wanted_str for item in value.split(","))
    wanted = token.lower().encode("latin-1")
    data = bytes(value)
    # The common case, one element: no split needed.
    if len(data) == len(wanted):
        return data.lower() == wanted
    return any(item.strip(b" \t").lower() == wanted for item in data.split(b","))


def _skip_ows(s: str, i: int, n: int) -> int:
    while i < n and (s[i] == " " or s[i] == "\t"):
        i += 1
    return i


def _scan_token(s: str, i: int, what: str) -> tuple[str, int]:
    match = _TOKEN.match(s, i)
    if match is None:
        shown = s[i : i + 16] if i < len(s) else "end of value"
        raise HeaderSyntaxError(f"expected a {what} at offset {i}, found {shown!r}")
    return match.group(), match.end()


def _scan_quoted(s: str, i: int, n: int) -> tuple[str, int]:
    # RFC 7230 §3.2.6: quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
    # s[i] is the opening DQUOTE. Each character is looked at once.
    start = i
    i += 1
    pieces: list[str] = []
    while True:
        match = _QDTEXT.match(s, i)
        assert match is not None  # the pattern matches the empty string
        if match.end() > i:
            pieces.append(match.group())
            i = match.end()
        if i >= n:
            raise HeaderSyntaxError(f"unterminated quoted-string at offset {start}")
        c = s[i]
        if c == '"':
            return "".join(pieces), i + 1
        if c == "\\" and i + 1 < n and _QUOTED_PAIR_CHAR.match(s, i + 1) is not None:
            pieces.append(s[i + 1])
            i += 2
            continue
        raise HeaderSyntaxError(f"invalid character {c!r} in quoted-string at offset {i}")


def parse_options(value: Text) -> list[Option]:
    """Parse a ``Sec-WebSocket-Extensions`` value into options, in order (RFC 6455 §9.1).

    Grammar::

        extension-list  = 1#extension
        extension       = extension-token *( ";" extension-param )
        extension-param = token [ "=" (token | quoted-string) ]

    OWS is allowed around ``;``, ``,`` and ``=``; empty list elements are skipped; a
    quoted value is unescaped. Raises HeaderSyntaxError, with the offset, otherwise.
    """
    s = _text(value)
    n = len(s)
    i = 0
    options: list[Option] = []
    while True:
        # Empty list elements ("a, , b" and leading or trailing commas) are allowed.
        while i < n and (s[i] == "," or s[i] == " " or s[i] == "\t"):
            i += 1
        if i >= n:
            return options
        name, i = _scan_token(s, i, "extension name")
        params: list[tuple[str, str | None]] = []
        i = _skip_ows(s, i, n)
        while i < n and s[i] == ";":
            i = _skip_ows(s, i + 1, n)
            key, i = _scan_token(s, i, "parameter name")
            i = _skip_ows(s, i, n)
            param: str | None = None
            if i < n and s[i] == "=":
                i = _skip_ows(s, i + 1, n)
                if i < n and s[i] == '"':
                    param, i = _scan_quoted(s, i, n)
                else:
                    param, i = _scan_token(s, i, "parameter value")
                i = _skip_ows(s, i, n)
            params.append((key, param))
        if i < n and s[i] != ",":
            raise HeaderSyntaxError(f"unexpected {s[i]!r} at offset {i} in extension list")
        options.append(Option(name, tuple(params)))


def scan_cookies(value: Text) -> Iterator[tuple[str, str]]:
    """Yield ``(name, value)`` for each cookie of a ``Cookie`` header (RFC 6265 §4.2.1).

    A quoted value is returned without its quotes. Raises HeaderSyntaxError at the first
    malformed pair (pairs before it have been yielded); separators may carry extra OWS.
    """
    s = _text(value)
    for pair in s.split(";"):
        pair = pair.strip(_OWS)
        if not pair:
            continue
        name, eq, cookie = pair.partition("=")
        name = name.rstrip(_OWS)
        cookie = cookie.lstrip(_OWS)
        if not eq or _TOKEN.fullmatch(name) is None:
            raise HeaderSyntaxError(f"malformed cookie pair: {pair[:64]!r}")
        # cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
        if len(cookie) >= 2 and cookie.startswith('"') and cookie.endswith('"'):
            cookie = cookie[1 : len(cookie) - 1]
        if _COOKIE_VALUE.fullmatch(cookie) is None:
            raise HeaderSyntaxError(f"malformed cookie value for {name!r}")
        yield name, cookie


def accept_key(key: str | bytes) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §1.3, §4.2.2).

    "the base64-encoded SHA-1 of the concatenation of the ``|Sec-WebSocket-Key|`` (as a
    string, not base64-decoded) with the string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"".
    """
    raw = key.encode("latin-1") if isinstance(key, str) else bytes(key)
    return accept_key_bytes(raw).decode("ascii")


def accept_key_bytes(key: bytes) -> bytes:
    """:func:`accept_key` of a key given as ``bytes``, as ``bytes`` (ASCII)."""
    digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    return binascii.b2a_base64(digest, newline=False)


def is_valid_key(key: Text) -> bool:
    """True if ``key`` is the canonical base64 of exactly 16 bytes (RFC 6455 §4.2.1 item 5).

    "a base64-encoded value that, when decoded, is 16 bytes in length." The length is
    checked first, so a megabyte-long key costs nothing (tungstenite #377).
    """
    if len(key) != 24:
        return False
    raw = key.encode("latin-1", "replace") if isinstance(key, str) else bytes(key)
    # 16 bytes are 22 base64 characters and "==": 132 bits, the last 4 of them padding,
    # which the canonical encoding leaves zero. So: 22 characters of the alphabet, the
    # last of them one whose value is a multiple of 16 (A, Q, g or w), then "==".
    return (
        raw.endswith(b"==")
        and raw[21] in _LAST_OF_16
        and not raw[:22].translate(None, _BASE64_ALPHABET)
    )
