"""The extensions a protocol (wsio._engine.protocol) runs messages through: RFC 7692 first.

An extension here is two objects. The one the caller builds holds the negotiated
parameters and the caller's choices, and is immutable, so one can serve any number of
connections. :meth:`bind` gives the protocol its own codec for one connection (the
zlib state lives there and nowhere else). The protocol asks a codec only for what its
RSV bits say: ``rsv`` is the bit set (RSV1 is 0b100) the extension claims on the first
frame of a message; the protocol checks every RSV bit in one place
(:func:`wsio._engine.framing.check_fields`) against the bits its codecs claim.
"""

from __future__ import annotations

from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.wsflate.codec import DEFAULT_LEVEL, DEFAULT_MEM_LEVEL, Compressor, Decompressor
from wsio.wsflate.parameters import Parameters

__all__ = ["DEFAULT_COMPRESSION_THRESHOLD", "PerMessageDeflate", "DeflateCodec"]

_BytesLike = bytes | bytearray | memoryview

#: Messages shorter than this are sent uncompressed unless the caller asks otherwise: a
#: deflate block's overhead and the call cost more than they save on a few bytes.
DEFAULT_COMPRESSION_THRESHOLD = 128


class PerMessageDeflate:
    """permessage-deflate (RFC 7692) as agreed in the handshake, for a protocol's ``extensions``.

    ``parameters`` are the agreed ones (e.g. from :meth:`wsio.wsflate.Extension.accepted`).
    Outgoing messages of at least ``threshold`` bytes are compressed unless a send says
    otherwise; ``level`` and ``mem_level`` are zlib's. Immutable: share it freely.
    """

    __slots__ = ("level", "mem_level", "parameters", "threshold")

    #: RFC 7692 §6: "the "Per-Message Compressed" bit ... RSV1".
    rsv = 0b100

    def __init__(
        self,
        parameters: Parameters | None = None,
        *,
        threshold: int = DEFAULT_COMPRESSION_THRESHOLD,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
    ) -> None:
        if threshold < 0:
            raise ValueError("threshold must be >= 0")
        self.parameters = parameters if parameters is not None else Parameters()
        self.threshold = threshold
        self.level = level
        self.mem_level = mem_level

    def bind(self, *, client: bool, max_message_size: int | None) -> DeflateCodec:
        """A codec for one connection: this side's compressor, the peer's decompressor."""
        return DeflateCodec(self, client=client, max_message_size=max_message_size)

    def __repr__(self) -> str:
        return f"PerMessageDeflate({self.parameters}, threshold={self.threshold})"


class DeflateCodec:
    """One connection's permessage-deflate state (owned by its protocol, never shared)."""

    __slots__ = ("_compressor", "_decompressor", "rsv", "threshold")

    def __init__(
        self,
        extension: PerMessageDeflate,
        *,
        client: bool,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        params = extension.parameters
        # RFC 7692 §7.1.1/§7.1.2: each side compresses with its own window and context
        # takeover setting, and inflates with the peer's.
        if client:
            own_bits, own_nct = params.client_window_bits, params.client_no_context_takeover
            peer_bits, peer_nct = params.server_window_bits, params.server_no_context_takeover
        else:
            own_bits, own_nct = params.server_window_bits, params.server_no_context_takeover
            peer_bits, peer_nct = params.client_window_bits, params.client_no_context_takeover
        self.rsv = extension.rsv
        self.threshold = extension.threshold
        self._compressor = Compressor(
            own_bits,
            no_context_takeover=own_nct,
            level=extension.level,
            mem_level=extension.mem_level,
        )
        self._decompressor = Decompressor(
            peer_bits, no_context_takeover=peer_nct, max_message_size=max_message_size
        )

    def inflate(self, piece: _BytesLike, first: bool, final: bool) -> bytes:
        """The decompressed bytes of the next ``piece`` of a compressed message (owned).

        ``piece`` is read before this returns and not kept. The message's decompressed
        size is capped while inflating (PayloadTooBigError, 1009); corrupt data raises
        CompressionError (1002).
        """
        decompressor = self._decompressor
        if first and final:
            return decompressor.decompress_message(piece)
        if first:
            decompressor.start_message()
        decompressor.feed(piece)
        if final:
            decompressor.feed_eof()
        return decompressor.read(-1)

    def deflate(self, data: _BytesLike, first: bool, final: bool) -> bytes:
        """The compressed payload for the next frame of an outgoing message (owned)."""
        compressor = self._compressor
        if first and final:
            return compressor.compress_message(data)
        out = compressor.compress(data)
        tail = compressor.finish() if final else compressor.flush()
        return out + tail if out else tail
