"""One-shot compression of whole messages and single-frame messages.

The counterparts of gobwas/ws's ``wsflate.CompressFrame``/``DecompressFrame``: each call
works on a whole message. Without a ``compressor``/``decompressor`` they assume no
context takeover (:data:`DEFAULT_PARAMETERS`): every message stands alone. Pass the
connection's :class:`Compressor`/:class:`Decompressor` to keep a context across calls.
"""

from __future__ import annotations

from wsio._engine.framing import Frame, Header
from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.exceptions import LocalProtocolError
from wsio.wsflate.codec import (
    DEFAULT_LEVEL,
    DEFAULT_MEM_LEVEL,
    BytesLike,
    Compressor,
    Decompressor,
)
from wsio.wsflate.message import RSV1, is_compressed
from wsio.wsflate.parameters import MAX_WINDOW_BITS

__all__ = ["compress", "compress_frame", "decompress", "decompress_frame"]

_TEXT = 0x1
_BINARY = 0x2


def compress(
    data: BytesLike,
    *,
    level: int = DEFAULT_LEVEL,
    window_bits: int = MAX_WINDOW_BITS,
    mem_level: int = DEFAULT_MEM_LEVEL,
) -> bytes:
    """The compressed payload of a message whose payload is ``data`` (RFC 7692 §7.2.1).

    No context is kept: the result inflates on its own. Thread-safe.
    """
    compressor = Compressor(window_bits, no_context_takeover=True, level=level, mem_level=mem_level)
    return compressor.compress_message(data)


def decompress(
    data: BytesLike,
    *,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    window_bits: int = MAX_WINDOW_BITS,
) -> bytes:
    """The payload of a message whose compressed payload is ``data`` (RFC 7692 §7.2.2).

    Raises PayloadTooBigError (1009) past ``max_message_size`` bytes, checked while
    inflating, and CompressionError (1002) for data that does not inflate.
    """
    decompressor = Decompressor(
        window_bits, no_context_takeover=True, max_message_size=max_message_size
    )
    return decompressor.decompress_message(data)


def compress_frame(
    frame: Frame,
    *,
    compressor: Compressor | None = None,
    level: int = DEFAULT_LEVEL,
) -> Frame:
    """A new frame: ``frame``'s payload compressed, RSV1 set, the length updated.

    ``frame`` must be a whole text or binary message (FIN set); it is not changed.
    Raises LocalProtocolError otherwise (a fragmented message goes through a Writer).
    """
    header = frame.header
    if header.opcode != _TEXT and header.opcode != _BINARY:
        raise LocalProtocolError("only text and binary messages are compressed (RFC 7692 §6.1)")
    if not header.fin:
        raise LocalProtocolError("compress_frame() takes a whole message: use wsflate.Writer")
    if header.rsv & RSV1:
        raise LocalProtocolError("the frame is compressed already (RSV1 is set)")
    if compressor is None:
        payload = compress(frame.payload, level=level)
    else:
        payload = compressor.compress_message(frame.payload)
    # RFC 7692 §6: "the "Per-Message Compressed" bit of the first frame of the message
    # is set" (here the only frame).
    new = Header(
        header.fin, header.rsv | RSV1, header.opcode, header.masked, header.mask, len(payload)
    )
    return Frame(new, payload)


def decompress_frame(
    frame: Frame,
    *,
    decompressor: Decompressor | None = None,
    max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
) -> Frame:
    """A new frame with ``frame``'s payload decompressed and RSV1 cleared.

    A frame without RSV1 is returned as is. The payload must be unmasked and the frame
    a whole message. Raises ProtocolError for RSV1 on a control or continuation frame,
    PayloadTooBigError (1009) past ``max_message_size`` (or the decompressor's own
    limit), CompressionError (1002) for corrupt data, LocalProtocolError for a
    compressed frame without FIN (read fragmented messages through a Reader).
    """
    header = frame.header
    if not is_compressed(header):
        return frame
    if not header.fin:
        raise LocalProtocolError("decompress_frame() takes a whole message: use wsflate.Reader")
    if decompressor is None:
        payload = decompress(frame.payload, max_message_size=max_message_size)
    else:
        payload = decompressor.decompress_message(frame.payload)
    new = Header(
        header.fin, header.rsv & ~RSV1, header.opcode, header.masked, header.mask, len(payload)
    )
    return Frame(new, payload)
