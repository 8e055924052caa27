"""The per-message DEFLATE codec (RFC 7692 §7.2) on ``zlib``, with no I/O.

:class:`Compressor` turns the payload of outgoing messages into compressed payloads and
:class:`Decompressor` does the reverse with a cap on the decompressed size of each
message. Both keep the LZ77 window between messages (context takeover) unless told not
to. :class:`~wsio.wsflate.Reader` and :class:`~wsio.wsflate.Writer` put them on streams;
the one-shot helpers and the connection classes use them directly.

The defaults (:data:`DEFAULT_LEVEL` 1, memLevel 8, and no context takeover in
:data:`~wsio.wsflate.DEFAULT_PARAMETERS`) are for a realtime server: the least CPU per
message, and no zlib memory held by an idle connection. Each message is compressed on
its own, so its latency does not depend on what went before.

Memory: a zlib compressor costs about ``2**(window_bits + 2) + 2**(mem_level + 9)`` bytes
plus 6 KB (256 KB at 15/8), a decompressor ``2**window_bits`` plus 7 KB once it has
inflated anything. Without context takeover a compressor holds nothing between messages,
so it goes back to a process-wide pool after each message (a full flush resets it: what
it compresses next never refers to what it compressed before); a decompressor is dropped
after each message (it is cheap to make, and a pooled one could let a peer refer back to
another connection's data).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, Protocol, TypeAlias

from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.exceptions import CompressionError, PayloadTooBigError
from wsio.wsflate.parameters import MAX_WINDOW_BITS, MIN_WINDOW_BITS

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MEM_LEVEL",
    "SYNC_TAIL",
    "CompressObject",
    "Compressor",
    "DecompressObject",
    "Decompressor",
]

BytesLike: TypeAlias = bytes | bytearray | memoryview

#: RFC 7692 §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail end."
SYNC_TAIL: Final = b"\x00\x00\xff\xff"
#: RFC 7692 §7.2.3.6 (an empty message): "a single 0x00 octet" — the header bits of an
#: empty stored block, all that is left of an empty message once the tail is removed.
_EMPTY_MESSAGE: Final = b"\x00"

#: zlib's level 1 (Z_BEST_SPEED, aiohttp's choice too): on JSON-ish text 2-4x the speed
#: of level 6 for about a quarter more bytes (bench/results/compression.md), the same on
#: a few hundred bytes; a realtime server spends its CPU on messages, not on ratio.
DEFAULT_LEVEL: Final = 1
#: zlib's default memory level (the hash table and the literal buffer: 2**(8+9) bytes).
DEFAULT_MEM_LEVEL: Final = 8

# Compressed input handed to zlib per call: a call that stops at its output limit copies
# what it did not consume (``unconsumed_tail``), so bounding the input bounds the copy.
_INPUT_CHUNK: Final = 65536
# Decompressed bytes asked of zlib per call when a message is read in pieces.
_OUTPUT_CHUNK: Final = 65536
# Compressed payloads up to this size are inflated with the tail appended (one call).
_SMALL_INPUT: Final = 65536
# Pooled compressors kept per configuration; more in use at once are made and dropped.
_POOL_LIMIT: Final = 16


class CompressObject(Protocol):
    """What a compressor factory returns: ``zlib.compressobj`` raw deflate, or alike."""

    def compress(self, data: BytesLike, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


class DecompressObject(Protocol):
    """What a decompressor factory returns: ``zlib.decompressobj`` raw deflate, or alike."""

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    def decompress(self, data: BytesLike, /, max_length: int = ...) -> bytes: ...


def _check_bits(window_bits: int) -> int:
    if isinstance(window_bits, bool) or not MIN_WINDOW_BITS <= window_bits <= MAX_WINDOW_BITS:
        raise ValueError(f"window_bits must be 8-15, not {window_bits!r}")
    return window_bits


_PoolKey: TypeAlias = tuple[int, int, int]
_pool: dict[_PoolKey, list[CompressObject]] = {}


def _new_compressobj(key: _PoolKey) -> CompressObject:
    level, wbits, mem_level = key
    return zlib.compressobj(level, zlib.DEFLATED, -wbits, mem_level)


class Compressor:
    """Compresses messages for one direction of one connection (RFC 7692 §7.2.1).

    Call :meth:`compress` for each piece of a message and :meth:`finish` at its end, or
    :meth:`compress_message` for a whole one; concatenated, their results are the
    payload of the message. ``window_bits`` is the agreed window of this side; with
    ``no_context_takeover`` each message is compressed on its own. ``factory`` (optional)
    returns a new raw-deflate compress object in place of ``zlib.compressobj``.
    """

    __slots__ = (
        "_factory",
        "_flushed",
        "_key",
        "_mode",
        "_obj",
        "_pooled",
        "_wrote",
        "no_context_takeover",
        "window_bits",
    )

    def __init__(
        self,
        window_bits: int = MAX_WINDOW_BITS,
        *,
        no_context_takeover: bool = False,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        factory: Callable[[], CompressObject] | None = None,
    ) -> None:
        self.window_bits = _check_bits(window_bits)
        self.no_context_takeover = no_context_takeover
        if not -1 <= level <= 9 or not 1 <= mem_level <= 9:
            raise ValueError(f"level must be -1..9 and mem_level 1..9, not {level}, {mem_level}")
        # zlib refuses raw deflate with an 8-bit window; its 9-bit deflate never reaches
        # back more than 512 - 262 = 250 bytes, which a peer's 256-byte window holds
        # (see wsio.wsflate.extension).
        self._key: _PoolKey = (level, max(window_bits, 9), mem_level)
        self._factory = factory
        # RFC 7692 §7.1.1.1: with server_no_context_takeover "the server MUST start
        # compressing each new message with an empty LZ77 sliding window" (the client
        # likewise, §7.1.1.2): a full flush ends a message like a sync flush and also
        # empties the window, so the object can serve another connection next.
        self._mode = zlib.Z_FULL_FLUSH if no_context_takeover else zlib.Z_SYNC_FLUSH
        self._pooled = no_context_takeover and factory is None
        self._obj: CompressObject | None = None
        # The message so far ends with a sync flush whose 4-byte tail was held back.
        self._flushed = False
        # Something of the current message has been returned.
        self._wrote = False

    def _object(self) -> CompressObject:
        obj = self._obj
        if obj is None:
            if self._factory is not None:
                obj = self._factory()
            elif self.no_context_takeover:
                try:
                    obj = _pool[self._key].pop()
                except (KeyError, IndexError):
                    obj = _new_compressobj(self._key)
            else:
                obj = _new_compressobj(self._key)
            self._obj = obj
        return obj

    def compress(self, data: BytesLike) -> bytes:
        """Compress a piece of the current message; returns what is ready (maybe b"")."""
        out = self._object().compress(data)
        if out:
            self._wrote = True
            if self._flushed:
                self._flushed = False
                return SYNC_TAIL + out
        return out

    def flush(self) -> bytes:
        """Everything of the message so far, decodable now (a sync flush mid-message)."""
        out = self._object().flush(zlib.Z_SYNC_FLUSH)
        if not out:
            return b""
        # The tail is held back: if the message ends right here it must not be sent.
        head = SYNC_TAIL if self._flushed else b""
        self._flushed = True
        self._wrote = True
        return head + out[:-4]

    def finish(self) -> bytes:
        """The end of the current message's payload; the next call starts a new message."""
        # RFC 7692 §7.2.1: "1. Compress all the octets of the payload of the message
        # using DEFLATE. 2. If the resulting data does not end with an empty DEFLATE
        # block with no compression (the "BTYPE" bits are set to 00), append an empty
        # DEFLATE block with no compression to the tail end. 3. Remove 4 octets (that
        # are 0x00 0x00 0xff 0xff) from the tail end."
        # A sync (or full) flush ends with exactly that empty block.
        obj = self._obj
        out = obj.flush(self._mode) if obj is not None else b""
        if out:
            if out[-4:] != SYNC_TAIL:  # pragma: no cover - a broken compressor factory
                raise RuntimeError("the compressor's flush did not end with 00 00 ff ff")
            result = (SYNC_TAIL + out[:-4]) if self._flushed else out[:-4]
        elif self._wrote:
            # Nothing since a flush whose tail is held back: dropping it ends the message.
            result = b""
        else:
            result = _EMPTY_MESSAGE
        self._flushed = self._wrote = False
        if self._pooled and obj is not None:
            self._release(obj)
        return result

    def _release(self, obj: CompressObject) -> None:
        self._obj = None
        pooled = _pool.setdefault(self._key, [])
        if len(pooled) < _POOL_LIMIT:
            pooled.append(obj)

    def compress_message(self, data: BytesLike) -> bytes:
        """The compressed payload of a whole message (RFC 7692 §7.2.1)."""
        if self._flushed or self._wrote:  # a message is under way: this ends it
            head = self.compress(data)
            tail = self.finish()
            return head + tail if head else tail
        # The common case in two zlib calls (see finish() for the RFC's steps).
        obj = self._obj
        if obj is None:
            obj = self._object()
        out = obj.compress(data)
        last = obj.flush(self._mode)
        if self._pooled:
            self._release(obj)
        if last:
            return b"".join((out, memoryview(last)[:-4])) if out else last[:-4]
        # No input since the last flush and nothing pending: the empty message.
        return out or _EMPTY_MESSAGE

    def reset(self) -> None:
        """Drop the compression context; the next message starts with an empty window."""
        # A compressor dropped mid-message is not pooled: its state must not reach
        # another connection.
        self._obj = None
        self._flushed = self._wrote = False


class Decompressor:
    """Inflates messages for one direction of one connection (RFC 7692 §7.2.2).

    For each message: :meth:`feed` its payload (in pieces, as it arrives), then
    :meth:`feed_eof`, and :meth:`read` until :attr:`done`; or :meth:`decompress_message`
    for a whole payload. The decompressed size of each message is capped at
    ``max_message_size`` while inflating: zlib is never asked for more than one byte
    past what is left, so a bomb costs at most the limit (PayloadTooBigError, 1009).
    Data that does not inflate raises CompressionError (1002).
    """

    __slots__ = (
        "_budget",
        "_eof_pending",
        "_factory",
        "_input",
        "_more",
        "_obj",
        "_pos",
        "_tail_fed",
        "done",
        "max_message_size",
        "no_context_takeover",
        "window_bits",
    )

    def __init__(
        self,
        window_bits: int = MAX_WINDOW_BITS,
        *,
        no_context_takeover: bool = False,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        factory: Callable[[], DecompressObject] | None = None,
    ) -> None:
        self.window_bits = _check_bits(window_bits)
        self.no_context_takeover = no_context_takeover
        self.max_message_size = max_message_size
        self._factory = factory
        self._obj: DecompressObject | None = None
        self._input: memoryview | None = None
        self._pos = 0
        self._eof_pending = self._more = self._tail_fed = False
        self._budget = self._limit()
        #: True once the current message is wholly inflated (after :meth:`feed_eof`).
        self.done = False

    def _limit(self) -> int:
        size = self.max_message_size
        return (1 << 62) if size is None else size

    def start_message(self) -> None:
        """Begin a new message: its size budget starts again at ``max_message_size``."""
        self._input = None
        self._pos = 0
        self._eof_pending = self._more = self._tail_fed = self.done = False
        self._budget = self._limit()

    def feed(self, data: BytesLike) -> None:
        """Give the next piece of the message's compressed payload (kept, not copied).

        Read everything out of the previous piece before feeding the next.
        """
        if self._input is not None and self._pos < len(self._input):
            raise RuntimeError("feed() before the previous input was read")
        self._input = memoryview(data).cast("B") if data else None
        self._pos = 0

    def feed_eof(self) -> None:
        """The message's payload is complete."""
        # RFC 7692 §7.2.2: "1. Append 4 octets of 0x00 0x00 0xff 0xff to the tail end
        # of the payload of the message. 2. Decompress the resulting data using DEFLATE."
        self._eof_pending = True

    @property
    def needs_input(self) -> bool:
        """True when :meth:`read` can give nothing more until :meth:`feed`/:meth:`feed_eof`."""
        return not (self._more or self._eof_pending) and (
            self._input is None or self._pos >= len(self._input)
        )

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` decompressed bytes (all that the input gives if ``n`` < 0).

        b"" means: feed more input, or (once :attr:`done`) the message is complete.
        """
        return self._inflate([], n)

    def _inflate(self, chunks: list[bytes], n: int) -> bytes:
        # read(), after ``chunks`` already inflated: all of them joined once.
        obj = self._obj
        if obj is None:
            obj = self._obj = (
                self._factory() if self._factory else zlib.decompressobj(-self.window_bits)
            )
        while True:
            piece: BytesLike
            data = self._input
            if data is not None and self._pos < len(data):
                piece = data[self._pos : self._pos + _INPUT_CHUNK]
            elif self._more:
                piece = b""
            elif self._eof_pending:
                self._eof_pending = False
                self._tail_fed = True
                self._input = memoryview(SYNC_TAIL)
                self._pos = 0
                continue
            else:
                break
            # Never more than one byte past the budget: a bomb stops at the limit. A
            # whole-message read goes in bounded chunks so that the limit, not twice it
            # (zlib's output blocks joined at the end of a call), bounds the memory.
            want = min(_OUTPUT_CHUNK if n < 0 else n, self._budget + 1)
            if obj.eof:
                # RFC 7692 §7.2.3.4: a peer may end a message with a BFINAL block ("Using
                # a DEFLATE Block with BFINAL Set to 1"); what follows it in the message
                # (an empty stored block's header, our appended tail) is not inflated.
                out = b""
                self._pos += len(piece)
            else:
                try:
                    out = obj.decompress(piece, want)
                except zlib.error as exc:
                    self._obj = None
                    # The peer gets 1002 and this text, never zlib's.
                    raise CompressionError("the compressed message does not inflate") from exc
                self._pos += len(piece) - len(obj.unconsumed_tail)
            # zlib filled all it was asked for: it may hold more output and no input.
            self._more = len(out) == want
            if len(out) > self._budget:
                self._obj = None
                raise PayloadTooBigError(
                    f"message is over {self.max_message_size} bytes after decompression"
                )
            self._budget -= len(out)
            if out:
                chunks.append(out)
                if n >= 0:
                    break
        if self._tail_fed and not self._more and self.needs_input:
            self._end_message()
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    def _end_message(self) -> None:
        self.done = True
        self._tail_fed = False
        self._input = None
        obj = self._obj
        # RFC 7692 §7.2.2: with server_no_context_takeover "the client MAY decompress
        # each new message with an empty LZ77 sliding window" (and the server likewise
        # with client_no_context_takeover): the window goes with the object. After a
        # BFINAL block the deflate stream has ended; the next message starts a new one.
        if self.no_context_takeover or (obj is not None and obj.eof):
            self._obj = None

    def decompress_message(self, payload: BytesLike) -> bytes:
        """The decompressed payload of a whole compressed message, within the limit."""
        if len(payload) > _SMALL_INPUT:
            self.start_message()
            self.feed(payload)
            self.feed_eof()
            return self.read(-1)
        # Small payloads (most messages): one zlib call on the payload and the tail.
        # Copying a small payload costs less than a second call.
        self._input = None
        self._pos = 0
        self._eof_pending = self._more = self._tail_fed = self.done = False
        self._budget = budget = self._limit()
        obj = self._obj
        if obj is None:
            obj = self._obj = (
                self._factory() if self._factory else zlib.decompressobj(-self.window_bits)
            )
        # As much as half the limit in one call, so that the whole message is made once;
        # zlib's output blocks and the bytes they are joined into are then at most the
        # limit together, and a bomb goes on in bounded chunks (read) until it hits it.
        want = min(budget + 1, max(budget >> 1, _OUTPUT_CHUNK))
        try:
            # RFC 7692 §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of
            # the payload of the message. Decompress the resulting data using DEFLATE."
            out = obj.decompress(b"".join((payload, SYNC_TAIL)), want)
        except zlib.error as exc:
            self._obj = None
            raise CompressionError("the compressed message does not inflate") from exc
        if len(out) < want:
            # zlib took all the input and gave all the output it had.
            self._budget = budget - len(out)
            if self.no_context_takeover or obj.eof:
                self._end_message()
            else:
                self.done = True
            return out
        # A large output: go on in bounded chunks from where zlib stopped.
        if len(out) > budget:
            self._obj = None
            raise PayloadTooBigError(
                f"message is over {self.max_message_size} bytes after decompression"
            )
        self._budget -= len(out)
        self._more = self._tail_fed = True
        rest = obj.unconsumed_tail
        self._input = memoryview(rest) if rest else None
        return self._inflate([out], -1)

    def reset(self) -> None:
        """Drop the window and any message in progress (for reuse on a new connection)."""
        self._obj = None
        self.start_message()
