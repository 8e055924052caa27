"""An incremental HTTP/1.1 request-head and response-head parser in a caller-owned buffer.

The parser owns one ``bytearray``, or uses one the caller passes. Its own starts at
4 KiB (a browser's request head fits) and doubles, up to ``max_size``, only when a head
fills it: a server with many handshakes in flight does not hold (or zero) 64 KiB for each.
Bytes reach it either by reading straight into it::

    n = sock.recv_into(parser.free())
    done = parser.advance(n)

or by copying with :meth:`HeadParser.feed`. Each byte is examined a bounded number of
times however the head is split (the search for the end of a line resumes where the
last one stopped), so a head dripped one byte at a time costs what it costs whole
(CVE-2023-43669 was a parser that re-scanned from the start on every read).

When the head is complete, :attr:`HeadParser.end` is the offset just past the empty
line; bytes the peer sent after the head (pipelined frames) are
``parser.buffer[parser.end:parser.filled]`` and are never parsed as HTTP.

Limits, each its own exception with the HTTP status a server answers it with
(``.status``; a client maps any :class:`HeadError` to a malformed response):

================================  ======================  ======
start line over ``max_line``      :class:`LineTooLongError`  414
header line over ``max_line``     :class:`LineTooLongError`  431
more than ``max_headers`` fields  :class:`TooManyHeadersError` 431
head over ``max_size`` bytes      :class:`HeadTooLargeError`  431
anything not HTTP/1.x syntax      :class:`MalformedHeadError` 400
================================  ======================  ======

Choices where RFC 7230 leaves one (§3.5 and §3.2.4):

- A bare LF ends a line like CRLF ("a recipient MAY recognize a single LF as a line
  terminator and ignore any preceding CR"); a CR anywhere else is an error.
- Obs-fold (a header line starting with SP or HTAB) is rejected: "A server that receives
  an obs-fold in a request message ... MUST either reject the message by sending a 400
  (Bad Request) ... or replace each received obs-fold with one or more SP octets".
- Whitespace between a field name and its colon is rejected ("A server MUST reject any
  received request message that contains whitespace between a header field-name and
  colon with a response code of 400").
- Empty lines before a request line are skipped (§3.5: "SHOULD ignore at least one
  empty line (CRLF) received prior to the request-line").
- Any ``HTTP/<digit>.<digit>`` version parses; whether to serve it (505) is the caller's
  decision.
- Field values have OWS trimmed; a control character (other than HTAB) in a value, or a
  field name that is not a token, is an error.
"""

from __future__ import annotations

import re

from wsio._engine.limits import DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS, DEFAULT_MAX_LINE

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    from cython.cimports.cpython.bytearray import (  # type: ignore[import-untyped]
        PyByteArray_AS_STRING,
    )
    from cython.cimports.cpython.bytes import (  # type: ignore[import-untyped]
        PyBytes_AS_STRING,
        PyBytes_FromStringAndSize,
    )

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_SIZE",
    "FIRST_BUFFER_SIZE",
    "HeadError",
    "HeadParser",
    "HeadTooLargeError",
    "LineTooLongError",
    "MalformedHeadError",
    "RequestParser",
    "ResponseParser",
    "TooManyHeadersError",
]

#: The head size limit (``max_size``): wsio's one default for every handshake layer.
DEFAULT_MAX_SIZE = DEFAULT_MAX_HEAD_SIZE

#: The size of a parser's own buffer until a head outgrows it.
FIRST_BUFFER_SIZE = 4096

# RFC 7230 §3.2.6: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 7230 §3.2: field-content has VCHAR / obs-text / SP / HTAB, no other control.
_CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 7230 §3.1.1: request-target has no whitespace or control characters.
_TARGET_BAD = re.compile(rb"[\x00-\x20\x7f]")
# RFC 7230 §2.6: HTTP-version = HTTP-name "/" DIGIT "." DIGIT. More digits are read
# (a peer saying HTTP/42.1092 gets 505, not 400), but at most four each.
_VERSION = re.compile(rb"HTTP/([0-9]{1,4})\.([0-9]{1,4})")

# The same set as a 256-byte table (1 for a tchar), for the compiled loop.
_TCHAR_TABLE = bytes(1 if _TOKEN.fullmatch(bytes([i])) is not None else 0 for i in range(256))

_START: int = 0
_FIELDS: int = 1
_DONE: int = 2


class HeadError(ValueError):
    """The head is not acceptable; ``status`` is the HTTP status a server answers with."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class MalformedHeadError(HeadError):
    """The head does not follow HTTP/1.1 syntax (400)."""


class LineTooLongError(HeadError):
    """A line is longer than ``max_line``: 414 for a request line, 431 for a header line."""

    status = 431


class TooManyHeadersError(HeadError):
    """More than ``max_headers`` header fields (431)."""

    status = 431


class HeadTooLargeError(HeadError):
    """The head is longer than ``max_size`` bytes (431)."""

    status = 431


class HeadParser:
    """Parses one request head (``response=False``) or response head into its buffer.

    After :meth:`advance` or :meth:`feed` returns True the start line and the headers are
    available until :meth:`reset`. Header names and values are kept as offsets into the
    buffer: :meth:`name`/:meth:`value` give zero-copy ``memoryview``s (valid until the
    parser is reset or its buffer is written), :meth:`headers` gives ``bytes`` copies.
    """

    def __init__(
        self,
        response: bool = False,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_size: int = DEFAULT_MAX_SIZE,
        buffer: bytearray | None = None,
    ) -> None:
        if max_line < 16 or max_headers < 0 or max_size < 16:
            raise ValueError("head parser limits are too small")
        self._growable = buffer is None
        if buffer is None:
            buffer = bytearray(min(max_size, FIRST_BUFFER_SIZE))
        elif len(buffer) < 16:
            raise ValueError("head parser buffer is too small")
        self.buffer = buffer
        self._view = memoryview(buffer)
        self._response = response
        self._max_line = max_line
        self._max_headers = max_headers
        self._max_size = max_size
        self._spans: list[int] = []
        self.reset()

    def reset(self) -> None:
        """Forget the head parsed so far, to parse another in the same buffer."""
        if self._growable and len(self.buffer) > FIRST_BUFFER_SIZE:
            self._replace(bytearray(FIRST_BUFFER_SIZE))  # a big head's room is not kept
        self._filled = 0
        #: Free for a caller that peeks: how many buffered bytes it has consumed from its
        #: stream so far. The parser itself never reads it.
        self.consumed = 0
        self._line = 0
        self._scan = 0
        self._state = _START
        self._end = -1
        self._spans.clear()
        self._start_line = b""
        self.method = b""
        self.target = b""
        self.version = (0, 0)
        self.status = 0
        self.reason = b""

    @property
    def filled(self) -> int:
        """How many bytes of :attr:`buffer` hold data."""
        return self._filled

    @property
    def complete(self) -> bool:
        """True once the empty line that ends the head has been parsed."""
        return self._state == _DONE

    @property
    def end(self) -> int:
        """Offset just past the head in :attr:`buffer` (-1 until the head is complete)."""
        return self._end

    def free(self) -> memoryview:
        """The writable, unused tail of the buffer, for ``recv_into``; then call advance().

        Empty only when the head has reached ``max_size`` (advance() has raised then).
        """
        if self._filled == len(self.buffer):
            self._grow(self._filled + 1)
        return self._view[self._filled :]

    def _grow(self, need: cython.Py_ssize_t) -> cython.int:
        # Double the parser's own buffer until it holds `need` bytes or reaches max_size.
        # Views handed out earlier keep the old buffer alive; only free()'s were live
        # (the head is incomplete, so no name or value view exists yet).
        size: cython.Py_ssize_t = len(self.buffer)
        if not self._growable or size >= self._max_size:
            return 0
        while size < need and size < self._max_size:
            size *= 2
        if size > self._max_size:
            size = self._max_size
        grown = bytearray(size)
        grown[: self._filled] = self._view[: self._filled]
        self._replace(grown)
        return 0

    def _replace(self, buffer: bytearray) -> cython.int:
        self.buffer = buffer
        self._view = memoryview(buffer)
        return 0

    def trailing(self) -> memoryview:
        """Bytes received after the head (a view into the buffer; empty until complete)."""
        if self._state != _DONE:
            return self._view[0:0]
        return self._view[self._end : self._filled]

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """Copy ``data`` into the buffer and parse it; returns how many bytes were taken.

        All of ``data`` is taken unless the head completes first and the buffer has no
        room for what follows it: the caller keeps ``data[taken:]`` (after
        :meth:`trailing`). Check :attr:`complete` for the result.
        """
        n = len(data)
        if n > len(self.buffer) - self._filled:
            self._grow(self._filled + n)
        room = len(self.buffer) - self._filled
        if n > room:
            n = room
        self._view[self._filled : self._filled + n] = data[:n] if n < len(data) else data
        self.advance(n)
        return n

    def advance(self, n: cython.Py_ssize_t) -> bool:
        """Parse ``n`` more bytes that were written at ``buffer[filled:]``; True when complete.

        Raises a :class:`HeadError` subclass as soon as the head breaks a limit or the
        syntax, however it was split.
        """
        if n < 0 or self._filled + n > len(self.buffer):
            raise ValueError("advance() past the end of the buffer")
        self._filled += n
        if self._state == _DONE:
            return True
        buf: bytearray = self.buffer
        filled: cython.Py_ssize_t = self._filled
        line: cython.Py_ssize_t
        eol: cython.Py_ssize_t
        nl: cython.Py_ssize_t
        while True:
            line = self._line
            nl = buf.find(b"\n", self._scan, filled)
            if nl < 0:
                # Only the bytes not yet searched are searched next time.
                self._scan = filled
                if filled - line > self._max_line:
                    raise self._too_long()
                if filled >= self._max_size or (filled >= len(buf) and not self._growable):
                    raise HeadTooLargeError(f"head is larger than {self._max_size} bytes")
                return False
            if nl - line > self._max_line:
                raise self._too_long()
            if nl + 1 > self._max_size:
                raise HeadTooLargeError(f"head is larger than {self._max_size} bytes")
            # RFC 7230 §3.5: a single LF ends a line; a CR before it is dropped.
            eol = nl - 1 if nl > line and buf[nl - 1] == 13 else nl
            self._line = nl + 1
            self._scan = nl + 1
            if self._state == _START:
                if eol == line and not self._response and not self._spans:
                    continue  # RFC 7230 §3.5: empty lines before a request line
                self._parse_start(line, eol)
                self._state = _FIELDS
            elif eol == line:
                self._state = _DONE
                self._end = nl + 1
                return True
            else:
                self._parse_field(line, eol)

    def _too_long(self) -> HeadError:
        if self._state == _START and not self._response:
            return LineTooLongError(f"request line is longer than {self._max_line} bytes", 414)
        return LineTooLongError(f"a head line is longer than {self._max_line} bytes")

    def _parse_start(self, start: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.int:
        line = bytes(self._view[start:end])
        self._start_line = line
        if self._response:
            # RFC 7230 §3.1.2: status-line = HTTP-version SP status-code SP reason-phrase
            # (the SP before an empty reason is often left out: tolerated).
            version, _, rest = line.partition(b" ")
            self.version = _parse_version(version)
            code, _, reason = rest.partition(b" ")
            if len(code) != 3 or not code.isdigit():
                raise MalformedHeadError(f"bad status code in {_shown(line)}")
            if _CTL.search(reason) is not None:
                raise MalformedHeadError(f"control character in reason phrase {_shown(line)}")
            self.status = int(code)
            self.reason = reason
        else:
            # RFC 7230 §3.1.1: request-line = method SP request-target SP HTTP-version
            parts = line.split(b" ")
            if len(parts) != 3:
                raise MalformedHeadError(f"malformed request line {_shown(line)}")
            method, target, version = parts
            if method != b"GET" and _TOKEN.fullmatch(method) is None:
                raise MalformedHeadError(f"bad method in request line {_shown(line)}")
            if not target or _TARGET_BAD.search(target) is not None:
                raise MalformedHeadError(f"bad request-target in {_shown(line)}")
            self.version = _parse_version(version)
            self.method = method
            self.target = target
        return 0

    def _parse_field(self, start: cython.Py_ssize_t, end: cython.Py_ssize_t) -> cython.int:
        buf: bytearray = self.buffer
        first: cython.int = buf[start]
        # RFC 7230 §3.2.4: obs-fold = CRLF 1*( SP / HTAB ); also whitespace before the
        # first field (§3 "MUST either reject the message as invalid ...").
        if first == 32 or first == 9:
            raise MalformedHeadError("obs-fold or leading whitespace in a header line")
        if len(self._spans) >= 4 * self._max_headers:
            raise TooManyHeadersError(f"more than {self._max_headers} header fields")
        # RFC 7230 §3.2: header-field = field-name ":" OWS field-value OWS
        colon: cython.Py_ssize_t
        vstart: cython.Py_ssize_t
        vend: cython.Py_ssize_t
        if cython.compiled:
            # One pass over the bytes with a table lookup each, instead of the regexes.
            data = cython.cast(cython.p_uchar, PyByteArray_AS_STRING(buf))
            table = cython.cast(cython.p_uchar, PyBytes_AS_STRING(_TCHAR_TABLE))
            c: cython.uchar
            colon = start
            while colon < end and table[data[colon]]:
                colon += 1
            if colon in (start, end) or data[colon] != 58:
                raise MalformedHeadError(f"malformed header line {_shown(bytes(buf[start:end]))}")
            vstart = colon + 1
            vend = end
            while vstart < vend and (data[vstart] == 32 or data[vstart] == 9):
                vstart += 1
            while vend > vstart and (data[vend - 1] == 32 or data[vend - 1] == 9):
                vend -= 1
            i: cython.Py_ssize_t
            for i in range(vstart, vend):
                c = data[i]
                if (c < 32 and c != 9) or c == 127:
                    raise MalformedHeadError(
                        f"control character in the value of {_shown(bytes(buf[start:colon]))}"
                    )
        else:
            colon = buf.find(b":", start, end)
            if colon <= start or _TOKEN.fullmatch(buf, start, colon) is None:
                raise MalformedHeadError(f"malformed header line {_shown(bytes(buf[start:end]))}")
            vstart = colon + 1
            vend = end
            while vstart < vend and (buf[vstart] == 32 or buf[vstart] == 9):
                vstart += 1
            while vend > vstart and (buf[vend - 1] == 32 or buf[vend - 1] == 9):
                vend -= 1
            if _CTL.search(buf, vstart, vend) is not None:
                raise MalformedHeadError(
                    f"control character in the value of {_shown(bytes(buf[start:colon]))}"
                )
        self._spans.extend((start, colon, vstart, vend))
        return 0

    # -- results -------------------------------------------------------------------

    @property
    def start_line(self) -> bytes:
        """The request or status line, without its line ending."""
        return self._start_line

    def __len__(self) -> int:
        """The number of header fields parsed so far."""
        return len(self._spans) // 4

    def name(self, i: int) -> memoryview:
        """Header ``i``'s name as received (a view into the buffer; copy to keep it)."""
        spans = self._spans
        return self._view[spans[4 * i] : spans[4 * i + 1]]

    def value(self, i: int) -> memoryview:
        """Header ``i``'s value, OWS trimmed (a view into the buffer; copy to keep it)."""
        spans = self._spans
        return self._view[spans[4 * i + 2] : spans[4 * i + 3]]

    def lower_name(self, i: int) -> bytes:
        """Header ``i``'s name in lower case (a new ``bytes``)."""
        spans = self._spans
        return bytes(self.buffer[spans[4 * i] : spans[4 * i + 1]]).lower()

    def lower_names(self) -> list[bytes]:
        """Every header's name in lower case, in order (new ``bytes``; one lowering pass)."""
        spans = self._spans
        if not spans:
            return []
        first = spans[0]
        low = bytes(self.buffer[first : spans[len(spans) - 1]]).lower()
        return [low[spans[k] - first : spans[k + 1] - first] for k in range(0, len(spans), 4)]

    def find_name(self, i: cython.Py_ssize_t, names: tuple[bytes, ...]) -> cython.Py_ssize_t:
        """The index in ``names`` (lower-case ``bytes``) of header ``i``'s name, or -1.

        Compared ASCII case-insensitively in the buffer, without copying the name: the
        Upgrader classifies every header this way.
        """
        spans = self._spans
        start: cython.Py_ssize_t = spans[4 * i]
        size: cython.Py_ssize_t = spans[4 * i + 1] - start
        k: cython.Py_ssize_t
        if cython.compiled:
            data = cython.cast(cython.p_uchar, PyByteArray_AS_STRING(self.buffer))
            j: cython.Py_ssize_t
            c: cython.uchar
            for k in range(len(names)):
                wanted: bytes = names[k]
                if len(wanted) != size:
                    continue
                low = cython.cast(cython.p_uchar, PyBytes_AS_STRING(wanted))
                for j in range(size):
                    c = data[start + j]
                    if 65 <= c <= 90:
                        c += 32
                    if c != low[j]:
                        break
                else:
                    return k
            return -1
        lowered = self.buffer[start : start + size].lower()
        return names.index(lowered) if lowered in names else -1

    def value_bytes(self, i: cython.Py_ssize_t) -> bytes:
        """Header ``i``'s value as a new ``bytes``."""
        spans = self._spans
        start: cython.Py_ssize_t = spans[4 * i + 2]
        end: cython.Py_ssize_t = spans[4 * i + 3]
        if cython.compiled:
            # One copy, straight out of the buffer (no intermediate bytearray slice).
            return PyBytes_FromStringAndSize(
                PyByteArray_AS_STRING(self.buffer) + start, end - start
            )
        return bytes(self.buffer[start:end])

    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as ``(name, value)`` ``bytes`` copies, in order, names as received."""
        buf = self.buffer
        spans = self._spans
        return [
            (bytes(buf[spans[k] : spans[k + 1]]), bytes(buf[spans[k + 2] : spans[k + 3]]))
            for k in range(0, len(spans), 4)
        ]

    def get_all(self, name: bytes) -> list[bytes]:
        """The values of every header called ``name`` (ASCII case-insensitive), in order."""
        wanted = name.lower()
        size = len(wanted)
        buf = self.buffer
        spans = self._spans
        return [
            bytes(buf[spans[k + 2] : spans[k + 3]])
            for k in range(0, len(spans), 4)
            if spans[k + 1] - spans[k] == size and buf[spans[k] : spans[k + 1]].lower() == wanted
        ]

    def get(self, name: bytes) -> bytes | None:
        """The value of the first header called ``name`` (any case), or None."""
        values = self.get_all(name)
        return values[0] if values else None


class RequestParser(HeadParser):
    """A :class:`HeadParser` for a request head (method, target, version, headers)."""

    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_size: int = DEFAULT_MAX_SIZE,
        buffer: bytearray | None = None,
    ) -> None:
        super().__init__(
            False, max_line=max_line, max_headers=max_headers, max_size=max_size, buffer=buffer
        )


class ResponseParser(HeadParser):
    """A :class:`HeadParser` for a response head (version, status, reason, headers)."""

    def __init__(
        self,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_size: int = DEFAULT_MAX_SIZE,
        buffer: bytearray | None = None,
    ) -> None:
        super().__init__(
            True, max_line=max_line, max_headers=max_headers, max_size=max_size, buffer=buffer
        )


_HTTP_11 = (1, 1)


def _parse_version(text: bytes) -> tuple[int, int]:
    if text == b"HTTP/1.1":  # nearly every head: no match object
        return _HTTP_11
    match = _VERSION.fullmatch(text)
    if match is None:
        raise MalformedHeadError(f"bad HTTP version {_shown(text)}")
    return int(match.group(1)), int(match.group(2))


def _shown(text: bytes) -> str:
    # Error messages show at most 64 bytes of what the peer sent, escaped.
    return repr(text[:64]) + ("..." if len(text) > 64 else "")
