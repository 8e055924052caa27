"""The data message being received, across its frames: the rules the protocol core and
``wsutil.Reader`` share (size and fragment limits, the fragmented flag, UTF-8 of text).

A :class:`MessageState` follows one message at a time. The caller decodes and checks
each frame header (framing's ``check_fields``), asks :meth:`~MessageState.check` whether
the frame fits the limits, and :meth:`~MessageState.take` it when it reads it; text
payload goes through :meth:`~MessageState.feed` as it arrives and
:meth:`~MessageState.end` when the message ends. Compiled, these are C calls (cimport
message.pxd) and the UTF-8 state is a C struct; pure, the same source runs on a
:class:`~wsio._engine.utf8.Utf8Validator`.
"""

from __future__ import annotations

from wsio._engine.framing import STATE_FRAGMENTED
from wsio._engine.utf8 import Utf8Validator
from wsio.exceptions import InvalidUTF8Error

try:
    import cython
except ImportError:  # pure mode without Cython installed
    from wsio._engine import _cython as cython  # type: ignore[no-redef]

if cython.compiled:
    # C names from message.pxd (which cimports the utf8 C path).
    from cython.cimports.wsio._engine.message import (  # type: ignore[import-untyped]
        _check,
        _scan,
        cbytes_ptr,
        check_limits,
    )
else:
    from wsio._engine.framing import check_limits

__all__ = ["MessageState"]

_Bytes = bytes | bytearray | memoryview

_FRAGMENTED = cython.declare(cython.int, STATE_FRAGMENTED)


class MessageState:
    """Where the data message being received stands: its size and frame count so far,
    and, for text checked as it arrives, the UTF-8 state between frames and reads."""

    def __init__(self) -> None:
        self.size = 0
        self.fragments = 0
        #: True while the message is text whose UTF-8 is checked as it arrives.
        self.text = False
        self._validator = Utf8Validator()  # pure mode; compiled, the _utf8 struct
        if cython.compiled:
            self._utf8.need = 0

    def check(
        self,
        opcode: cython.int,
        length: cython.longlong,
        max_frame_size: cython.longlong,
        max_message_size: cython.longlong,
        max_fragments: cython.longlong,
    ) -> cython.int:
        """Raise PayloadTooBigError (1009) if a data frame of ``length`` bytes, taken
        into this message (a new one unless ``opcode`` is 0), breaks a limit."""
        # RFC 6455 §10.4: limits on "the frame size or total message size after
        # reassembly from multiple frames", checked at the header, before the payload.
        if opcode:
            check_limits(length, max_frame_size, length, max_message_size, 1, max_fragments)
        else:
            check_limits(
                length,
                max_frame_size,
                self.size + length,
                max_message_size,
                self.fragments + 1,
                max_fragments,
            )
        return 0

    def take(
        self,
        opcode: cython.int,
        fin: cython.bint,
        length: cython.longlong,
        flags: cython.int,
        text: cython.bint,
    ) -> cython.int:
        """Count a data frame into the message (a new one unless ``opcode`` is 0, whose
        UTF-8 is checked as it arrives if ``text``); return ``flags`` with
        STATE_FRAGMENTED set while the message goes on after this frame."""
        if opcode:
            self.size = 0
            self.fragments = 0
            self.text = text
            if text:
                if cython.compiled:
                    self._utf8.need = 0
                else:
                    self._validator.reset()
        self.size += length
        self.fragments += 1
        # RFC 6455 §5.4: "a single message consisting of zero or more frames with the
        # FIN bit clear and the opcode set to 0, and terminated by a single frame with
        # the FIN bit set and an opcode of 0" (after a first, non-zero opcode frame).
        if fin:
            flags &= ~_FRAGMENTED
        else:
            flags |= _FRAGMENTED
        return flags

    def feed(self, data: _Bytes) -> cython.int:
        """Check the next payload bytes of a text message (any bytes-like, not kept);
        raise InvalidUTF8Error (1007) at the first bad byte."""
        if cython.compiled:
            size: cython.Py_ssize_t = 0
            if _check(data, 0, cython.address(self._utf8), cython.address(size)) >= 0:
                self._utf8.need = 0
                raise InvalidUTF8Error("text is not valid UTF-8")
        elif not self._validator.feed(data):
            raise InvalidUTF8Error("text is not valid UTF-8")
        return 0

    def feed_ptr(self, p: cbytes_ptr, n: cython.Py_ssize_t) -> cython.int:
        """Compiled only: :meth:`feed` for ``n`` bytes at ``p``."""
        if cython.compiled and _scan(p, n, 0, cython.address(self._utf8)) >= 0:
            self._utf8.need = 0
            raise InvalidUTF8Error("text is not valid UTF-8")
        return 0

    def end(self) -> cython.int:
        """The text message ends here: raise InvalidUTF8Error (1007) if it ends inside
        a character (RFC 3629), and stop checking."""
        self.text = False
        if cython.compiled:
            if self._utf8.need:
                self._utf8.need = 0
                raise InvalidUTF8Error("text ends inside a UTF-8 character")
        elif not self._validator.feed(b"", True):
            raise InvalidUTF8Error("text ends inside a UTF-8 character")
        return 0
