"""Incremental UTF-8 validation (RFC 3629), for text messages (RFC 6455 §8.1).

   "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
    stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
    WebSocket Connection_."

A stream is checked in chunks as it arrives, and it fails as early as it can: as soon
as the bytes seen so far cannot begin any valid stream (``F4 90`` fails at ``90``,
while ``F4 8F`` is merely incomplete), which is what the Autobahn test suite's
"fail fast" cases (6.4.x) expect. The position reported for an error is what
Python's decoder reports as ``UnicodeDecodeError.start``: the offset of the first
byte of the first ill-formed sequence, which is also the length of the longest
valid prefix.

Compiled, long stretches go through a vector check (AVX2 on x86-64, see utf8.pxd) and
the rest through a C loop that skips ASCII 8 and 32 bytes at a time and checks each
multibyte sequence against RFC 3629's table; neither builds a ``str``. Uncompiled, it
is Python's own UTF-8 decoder, run chunk by chunk.
"""

from __future__ import annotations

import codecs

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # C names from utf8.pxd (which cimports the CPython and libc ones).
    from cython.cimports.wsio._engine.utf8 import (  # type: ignore[import-untyped]
        PyBUF_SIMPLE,
        PyBuffer_Release,
        PyByteArray_AS_STRING,
        PyByteArray_GET_SIZE,
        PyBytes_AS_STRING,
        PyBytes_GET_SIZE,
        PyObject_GetBuffer,
        buffer_t,
        cbytes_ptr,
        memcpy,
        ssize_ptr,
        state_ptr,
        utf8_state,
        word_t,
        wsio_utf8_bulk,
    )

__all__ = ["Utf8Validator", "is_valid_utf8"]

_Bytes = bytes | bytearray | memoryview


class Utf8Validator:
    """Checks a byte stream fed in chunks; keeps no reference to the bytes it was given.

    One validator serves one stream at a time; :meth:`reset` readies it for the next.
    """

    __slots__ = ("_count", "_error", "_pending", "_state")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far, ready for a new one."""
        self._count = 0
        self._error = -1
        self._pending = b""
        if cython.compiled:
            self._state.need = 0
            self._state.start = 0

    @property
    def valid(self) -> bool:
        """No error so far (the stream may still be inside a character)."""
        return self._error < 0

    @property
    def incomplete(self) -> bool:
        """Valid so far, and the last byte fed is inside a multibyte character."""
        if cython.compiled:
            return self._error < 0 and self._state.need != 0
        else:
            return self._error < 0 and len(self._pending) != 0

    @property
    def error_offset(self) -> int:
        """Offset in the stream of the first byte of the first bad sequence, or -1."""
        return self._error

    def feed(self, data: _Bytes, final: bool = False) -> bool:
        """Check the next chunk; False once the stream is invalid, and from then on.

        ``final`` says the stream ends after ``data``, so an unfinished character is an
        error too. ``data`` is any C-contiguous bytes-like object and is not kept.
        """
        if self._error >= 0:
            return False
        if cython.compiled:
            size: cython.Py_ssize_t = 0
            state = cython.declare(state_ptr, cython.address(self._state))
            error: cython.Py_ssize_t = _check(data, self._count, state, cython.address(size))
            self._count += size
            if error < 0 and final and state.need:
                error = state.start  # RFC 3629: a character cut off by the end
            if error >= 0:
                self._error = error
                state.need = 0
                return False
            return True
        else:
            return self._feed_pure(data, final)

    def _feed_pure(self, data: _Bytes, final: bool) -> bool:
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        n = len(view)
        base = self._count  # stream offset of view[0]
        self._count = base + n
        pending = self._pending
        origin = base - len(pending)  # stream offset of what is being decoded
        pos = 0  # view[:pos] is checked
        try:
            if pending:
                # Finish the open character with at most 3 more bytes (4 is the most a
                # character takes, and the decoder sees at least one of it already).
                head = pending + bytes(view[:3])
                _, used = codecs.utf_8_decode(head, "strict", final and n <= 3)
                if not used:  # still unfinished: all of this chunk is in `head`
                    return self._hold(head, origin)
                pos = used - len(pending)
                origin = base + pos
            _, used = codecs.utf_8_decode(view[pos:], "strict", final)
        except UnicodeDecodeError as exc:
            self._error = origin + exc.start
            self._pending = b""
            return False
        end = pos + used
        return self._hold(bytes(view[end:]), base + end)

    def _hold(self, tail: bytes, tail_offset: int) -> bool:
        # Python's incremental decoder holds back ED A0..BF (a UTF-16 surrogate half)
        # at the end of a chunk, for the "surrogatepass" handler; strict UTF-8 can
        # never complete it, so it fails now, like the compiled path.
        if len(tail) >= 2 and tail[0] == 0xED and tail[1] >= 0xA0:
            self._error = tail_offset
            self._pending = b""
            return False
        self._pending = tail
        return True


def is_valid_utf8(data: _Bytes) -> bool:
    """True if ``data`` is, in whole, valid UTF-8 (nothing is kept)."""
    if cython.compiled:
        state = cython.declare(utf8_state)
        size: cython.Py_ssize_t = 0
        state.need = 0
        return _check(data, 0, cython.address(state), cython.address(size)) < 0 and not state.need
    else:
        try:
            codecs.utf_8_decode(data, "strict", True)
        except UnicodeDecodeError:
            return False
        return True


# Compiled-only helpers (declared cdef in utf8.pxd).


def _check(
    data: object, base: cython.Py_ssize_t, st: state_ptr, size: ssize_ptr
) -> cython.Py_ssize_t:
    """Scan the bytes of ``data`` (stream offset ``base``); store their count in ``size``."""
    view = cython.declare(buffer_t)
    error: cython.Py_ssize_t
    n: cython.Py_ssize_t
    if type(data) is bytes:
        n = PyBytes_GET_SIZE(data)
        size[0] = n
        return _scan(cython.cast(cbytes_ptr, PyBytes_AS_STRING(data)), n, base, st)
    if type(data) is bytearray:
        n = PyByteArray_GET_SIZE(data)
        size[0] = n
        return _scan(cython.cast(cbytes_ptr, PyByteArray_AS_STRING(data)), n, base, st)
    PyObject_GetBuffer(data, cython.address(view), PyBUF_SIMPLE)
    size[0] = view.len
    error = _scan(cython.cast(cbytes_ptr, view.buf), view.len, base, st)
    PyBuffer_Release(cython.address(view))
    return error


def _scan(
    p: cbytes_ptr, n: cython.Py_ssize_t, base: cython.Py_ssize_t, st: state_ptr
) -> cython.Py_ssize_t:
    """Check ``p[:n]``, which continues the stream where ``st`` left it.

    Returns -1 if there is no error (``st`` then says where the stream stands), else
    the stream offset of the first byte of the bad sequence.
    """
    # RFC 3629 §4, the well-formed sequences:
    #   UTF8-1      = %x00-7F
    #   UTF8-2      = %xC2-DF UTF8-tail
    #   UTF8-3      = %xE0 %xA0-BF UTF8-tail / %xE1-EC 2( UTF8-tail ) /
    #                 %xED %x80-9F UTF8-tail / %xEE-EF 2( UTF8-tail )
    #   UTF8-4      = %xF0 %x90-BF 2( UTF8-tail ) / %xF1-F3 3( UTF8-tail ) /
    #                 %xF4 %x80-8F 2( UTF8-tail )
    #   UTF8-tail   = %x80-BF
    # Only the second byte has a range of its own (lo..hi); the others are tails.
    high: word_t = 0x8080808080808080
    w0: word_t = 0
    w1: word_t = 0
    w2: word_t = 0
    w3: word_t = 0
    i: cython.Py_ssize_t = 0
    c: cython.uint
    lo: cython.uint
    hi: cython.uint
    need: cython.int = st.need
    start: cython.Py_ssize_t

    if need:
        # Finish the character that the previous chunk left open.
        lo = st.lo
        hi = st.hi
        start = st.start
        while need and i < n:
            c = p[i]
            if c < lo or c > hi:
                return start
            lo = 0x80
            hi = 0xBF
            need -= 1
            i += 1
        st.need = need
        st.lo = lo
        st.hi = hi
        if need:
            return -1

    # Long stretches go to the vector check first; it stops at a character boundary
    # before any error it sees (or near the end), and the loop below does the rest.
    i += wsio_utf8_bulk(p + i, n - i)
    while i < n:
        c = p[i]
        if c < 0x80:
            i += 1
            # A run of ASCII goes 8 bytes per test, then 32 per test; a lone ASCII
            # byte between multibyte characters pays one failed 8-byte test.
            if i + 8 <= n:
                memcpy(cython.address(w0), p + i, 8)
                if (w0 & high) == 0:
                    i += 8
                    while i + 32 <= n:
                        memcpy(cython.address(w0), p + i, 8)
                        memcpy(cython.address(w1), p + i + 8, 8)
                        memcpy(cython.address(w2), p + i + 16, 8)
                        memcpy(cython.address(w3), p + i + 24, 8)
                        if ((w0 | w1 | w2 | w3) & high) != 0:
                            break
                        i += 32
                    while i + 8 <= n:
                        memcpy(cython.address(w0), p + i, 8)
                        if (w0 & high) != 0:
                            break
                        i += 8
            continue
        # A whole sequence in the chunk is checked in one go; one cut off by the end of
        # the chunk goes to the byte-by-byte tail below.
        if c < 0xE0:
            if c < 0xC2:
                return base + i  # a tail byte with no lead, or C0/C1 (always overlong)
            if i + 1 < n:
                if (p[i + 1] & 0xC0) != 0x80:
                    return base + i
                i += 2
                continue
            need = 1
            lo = 0x80
            hi = 0xBF
        elif c < 0xF0:
            lo = 0xA0 if c == 0xE0 else 0x80  # E0 80..9F: overlong
            hi = 0x9F if c == 0xED else 0xBF  # ED A0..BF: UTF-16 surrogates
            if i + 2 < n:
                if p[i + 1] < lo or p[i + 1] > hi or (p[i + 2] & 0xC0) != 0x80:
                    return base + i
                i += 3
                continue
            need = 2
        elif c < 0xF5:
            lo = 0x90 if c == 0xF0 else 0x80  # F0 80..8F: overlong
            hi = 0x8F if c == 0xF4 else 0xBF  # F4 90..BF: above U+10FFFF
            if i + 3 < n:
                if (
                    p[i + 1] < lo
                    or p[i + 1] > hi
                    or (p[i + 2] & 0xC0) != 0x80
                    or (p[i + 3] & 0xC0) != 0x80
                ):
                    return base + i
                i += 4
                continue
            need = 3
        else:
            return base + i  # F5..FF: never in UTF-8
        # The chunk ends inside this character: check what there is of it.
        start = base + i
        st.start = start
        i += 1
        while i < n:
            c = p[i]
            if c < lo or c > hi:
                return start
            lo = 0x80
            hi = 0xBF
            need -= 1
            i += 1
        st.need = need
        st.lo = lo
        st.hi = hi
        return -1
    return -1
