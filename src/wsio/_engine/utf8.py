"""Incremental UTF-8 validation (RFC 3629), for text messages (RFC 6455 §8.1).

   "When an endpoint is to interpret a byte stream as UTF-8 but finds that the byte
    stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the
    WebSocket Connection_."
"""

from __future__ import annotations

import codecs


class Utf8Validator:
    """Checks a byte stream fed in chunks; keeps no copy of the bytes it has checked."""

    __slots__ = ("_decoder", "_count")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._count = 0

    def feed(self, data: bytes | bytearray | memoryview, final: bool = False) -> bool:
        """Check the next chunk; False once the stream is invalid (``final``: no more to come)."""
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            return False
        self._count += len(data)
        return True

    def reset(self) -> None:
        """Forget everything fed so far, ready for a new stream."""
        self._decoder.reset()
        self._count = 0


def is_valid_utf8(data: bytes | bytearray | memoryview) -> bool:
    """True if ``data`` is, in whole, valid UTF-8."""
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True
