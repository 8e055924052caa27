"""permessage-deflate (RFC 7692): parameters, negotiation, codecs, streams, frame helpers.

The layers, from the handshake to the bytes:

- :class:`Parameters`, :data:`DEFAULT_PARAMETERS` — the four negotiated parameters.
- :class:`Extension` — ``negotiate`` for :class:`wsio.Upgrader`; ``offer``/``accept`` for
  the client; ``accepted()`` is the agreement.
- :class:`MessageState` — RSV1 hooks for ``wsutil.Reader``/``wsutil.Writer``;
  :func:`is_compressed` checks one header.
- :class:`Reader`/:class:`Writer` — a message at a time over any stream, the window
  kept across messages when the agreement allows it.
- :class:`Compressor`/:class:`Decompressor` — the codec, without I/O.
- :func:`compress_frame`, :func:`decompress_frame`, :func:`compress`,
  :func:`decompress` — one message in one call.

Memory per connection, and the knob that trades it for ratio: without context takeover
(the default) nothing is held between messages. With context takeover a compressor
costs about ``2**(window_bits + 2) + 2**(mem_level + 9)`` bytes and a decompressor
``2**window_bits`` bytes, for the connection's life; lower ``server_max_window_bits``
(server side) and ``mem_level`` to shrink them. ``bench/results/compression.md`` has
the measured table.
"""

from __future__ import annotations

from wsio.wsflate.codec import (
    DEFAULT_LEVEL,
    DEFAULT_MEM_LEVEL,
    SYNC_TAIL,
    CompressObject,
    Compressor,
    DecompressObject,
    Decompressor,
)
from wsio.wsflate.extension import Extension
from wsio.wsflate.helpers import compress, compress_frame, decompress, decompress_frame
from wsio.wsflate.message import RSV1, MessageState, is_compressed
from wsio.wsflate.parameters import (
    DEFAULT_PARAMETERS,
    EXTENSION_NAME,
    MAX_LZ77_WINDOW_SIZE,
    MAX_WINDOW_BITS,
    MIN_WINDOW_BITS,
    Parameters,
)
from wsio.wsflate.stream import Reader, Writer

__all__ = [
    "EXTENSION_NAME",
    "MAX_LZ77_WINDOW_SIZE",
    "MIN_WINDOW_BITS",
    "MAX_WINDOW_BITS",
    "Parameters",
    "DEFAULT_PARAMETERS",
    "Extension",
    "RSV1",
    "MessageState",
    "is_compressed",
    "Reader",
    "Writer",
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "SYNC_TAIL",
    "Compressor",
    "Decompressor",
    "CompressObject",
    "DecompressObject",
    "compress",
    "decompress",
    "compress_frame",
    "decompress_frame",
]
