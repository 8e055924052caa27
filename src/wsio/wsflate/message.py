"""RSV1, the "Per-Message Compressed" bit (RFC 7692 §6): checks and the wsutil hooks.

:class:`MessageState` is both a receive extension (``unset_bits``, for
``wsutil.Reader(extensions=[...])``) and a send extension (``set_bits``, for
``wsutil.Writer.set_extensions(...)``). :func:`is_compressed` checks one header.
"""

from __future__ import annotations

from typing import Final

from wsio._engine.framing import Header
from wsio.exceptions import ProtocolError

__all__ = ["MessageState", "is_compressed"]

#: RSV1 in :attr:`Header.rsv` (the 3-bit value RSV1·RSV2·RSV3).
RSV1: Final = 0b100

_CONTINUATION: Final = 0x0
_TEXT: Final = 0x1
_BINARY: Final = 0x2


def is_compressed(header: Header) -> bool:
    """True if this header starts a compressed message (RSV1 on a text or binary frame).

    Raises ProtocolError (1002) for RSV1 on a continuation or control frame.
    """
    if not header.rsv & RSV1:
        return False
    _check_first(header)
    return True


def _check_first(header: Header) -> None:
    # RFC 7692 §6.1: "An endpoint MUST NOT set the "Per-Message Compressed" bit of
    # control frames and non-first fragments of a data message. An endpoint receiving
    # such a frame MUST _Fail the WebSocket Connection_."
    opcode = header.opcode
    if opcode == _CONTINUATION:
        raise ProtocolError("RSV1 (compressed) set on a continuation frame")
    if opcode != _TEXT and opcode != _BINARY:
        raise ProtocolError(f"RSV1 (compressed) set on a frame with opcode {opcode:#x}")


class MessageState:
    """Whether the current message is compressed; the RSV1 hooks for wsutil.

    Receiving, :meth:`unset_bits` records RSV1 of each message's first frame in
    :attr:`compressed` and clears it. Sending, :meth:`set_bits` sets RSV1 on the first
    frame of each message while :attr:`compressed` is true (:meth:`set_compressed`, or
    a :class:`~wsio.wsflate.Writer` given this state, decides it per message). One
    object may serve both directions when they take turns (an echo loop); give the
    reader and the writer one each when they run at once. ``negotiated=False`` makes
    every RSV1 a protocol error, for a connection without permessage-deflate.
    """

    __slots__ = ("compressed", "negotiated", "opcode")

    def __init__(self, *, negotiated: bool = True) -> None:
        self.negotiated = negotiated
        #: The message being read or written is (to be) compressed.
        self.compressed = False
        #: The opcode of the message last started by :meth:`unset_bits` (text or binary).
        self.opcode = 0

    def is_compressed(self) -> bool:
        """True if the message last started by :meth:`unset_bits` is compressed."""
        return self.compressed

    def set_compressed(self, compressed: bool) -> None:
        """Say whether the next message written is compressed (RSV1 on its first frame)."""
        self.compressed = compressed

    def unset_bits(self, header: Header) -> Header:
        """The receive hook: check and clear RSV1 of a received header (in place).

        Raises ProtocolError (1002) for RSV1 on a control or continuation frame, or at
        all when compression was not negotiated.
        """
        opcode = header.opcode
        if not header.rsv & RSV1:
            if opcode in (_TEXT, _BINARY):
                self.compressed = False
                self.opcode = opcode
            return header
        # RFC 7692 §6: "the "Per-Message Compressed" bit ... is set only if a PMCE is
        # negotiated" and RFC 6455 §5.2: "If a nonzero value is received and none of the
        # negotiated extensions defines the meaning of such a nonzero value, the
        # receiving endpoint MUST _Fail the WebSocket Connection_."
        if not self.negotiated:
            raise ProtocolError("RSV1 set but permessage-deflate was not negotiated")
        _check_first(header)
        # RFC 7692 §6: "Per-Message Compressed ... the "Per-Message Compressed" bit of
        # the first frame of the message is set" and the rest of the message follows it.
        self.compressed = True
        self.opcode = opcode
        header.rsv &= ~RSV1
        return header

    def set_bits(self, header: Header) -> Header:
        """The send hook: set RSV1 on a message's first frame when it is compressed."""
        # RFC 7692 §6: "A PMCE ... sets the "Per-Message Compressed" bit of the first
        # frame of the message"; §6.1: not on "control frames and non-first fragments".
        if self.compressed and (header.opcode == _TEXT or header.opcode == _BINARY):
            header.rsv |= RSV1
        return header
