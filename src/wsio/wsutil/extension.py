"""The hooks through which an extension (RFC 6455 §9) sees and sets a frame's RSV bits."""

from __future__ import annotations

from typing import Protocol

from wsio._engine.framing import Header

__all__ = ["RecvExtension", "SendExtension"]


class RecvExtension(Protocol):
    """Called with each received frame header, after the RFC checks.

    Returns the header to go on with (it may change and return the same object),
    with the extension's RSV bits cleared; raises :class:`wsio.ProtocolError` for a
    bit that is wrong.
    """

    def unset_bits(self, header: Header, /) -> Header: ...


class SendExtension(Protocol):
    """Called with each frame header about to be written; returns it with RSV bits set."""

    def set_bits(self, header: Header, /) -> Header: ...
