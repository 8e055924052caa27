"""Streaming decompression and compression of one message at a time, over any stream.

:class:`Reader` reads a message's compressed payload from a source (a ``wsutil.Reader``,
or anything with ``read(n)`` that returns b"" at the end of the message) and gives the
decompressed bytes. :class:`Writer` takes a message's bytes and writes the compressed
payload to a destination (a ``wsutil.Writer``, or anything with ``write``). Both are
reset per message and keep their compression context across messages when the agreed
parameters allow context takeover.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from wsio._engine import message as _received
from wsio._engine.limits import DEFAULT_MAX_MESSAGE_SIZE
from wsio.wsflate.codec import (
    DEFAULT_LEVEL,
    DEFAULT_MEM_LEVEL,
    BytesLike,
    CompressObject,
    Compressor,
    DecompressObject,
    Decompressor,
)
from wsio.wsflate.message import MessageState
from wsio.wsflate.parameters import DEFAULT_PARAMETERS, Parameters

__all__ = ["Reader", "Writer"]

_TEXT = 0x1
# How much compressed payload the Reader asks its source for at a time.
_READ_CHUNK = 65536


class Readable(Protocol):
    """A source of one message's payload: ``read(n)``, b"" at the end of the message."""

    def read(self, n: int = ..., /) -> bytes | bytearray | memoryview: ...


class Writable(Protocol):
    """A destination for a message's payload."""

    def write(self, data: Any, /) -> Any: ...


class Reader:
    """Reads one decompressed message at a time from ``source``.

    ``parameters`` are the agreed ones (:meth:`Extension.accepted`); ``client`` says
    which side this is, so which half applies (a server inflates the client's messages).
    ``max_message_size`` caps each message after decompression (PayloadTooBigError,
    1009); corrupt data raises CompressionError (1002). With ``state`` (the
    :class:`MessageState` of the wsutil reader), a message sent uncompressed is passed
    through, and the decompressed text of a compressed text message is checked to be
    UTF-8 when ``check_utf8`` (InvalidUTF8Error, 1007): the wsutil reader can only check
    the bytes on the wire. ``factory`` returns a raw-inflate object in place of
    ``zlib.decompressobj``.
    """

    __slots__ = ("_checking", "_eof", "_inflater", "_text", "check_utf8", "source", "state")

    def __init__(
        self,
        source: Readable | None,
        *,
        parameters: Parameters = DEFAULT_PARAMETERS,
        client: bool = False,
        max_message_size: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        state: MessageState | None = None,
        check_utf8: bool = True,
        factory: Callable[[], DecompressObject] | None = None,
    ) -> None:
        # RFC 7692 §7.1.2.1/§7.1.2.2: a client inflates with the server's window and the
        # server with the client's.
        if client:
            bits, nct = parameters.server_window_bits, parameters.server_no_context_takeover
        else:
            bits, nct = parameters.client_window_bits, parameters.client_no_context_takeover
        self._inflater = Decompressor(
            bits, no_context_takeover=nct, max_message_size=max_message_size, factory=factory
        )
        self.source = source
        self.state = state
        self.check_utf8 = check_utf8
        # The UTF-8 rule of a received text message: the protocol core's bookkeeping.
        self._text = _received.MessageState()
        self._checking = False
        self.reset()

    @property
    def decompressor(self) -> Decompressor:
        """The codec under this reader (its window lives across messages)."""
        return self._inflater

    def reset(self, source: Readable | None = None) -> None:
        """Start reading the next message, from ``source`` if given."""
        if source is not None:
            self.source = source
        self._eof = False
        self._inflater.start_message()
        state = self.state
        self._checking = self.check_utf8 and state is not None and state.opcode == _TEXT
        if self._checking:
            # RFC 6455 §8.1: text is UTF-8 — the decompressed bytes, RFC 7692 §6.
            self._text.take(_TEXT, True, 0, 0, True)

    def readable(self) -> bool:
        """True: this is a readable stream."""
        return True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` decompressed bytes (the whole rest if ``n`` < 0); b"" at the end."""
        if n == 0 or self._eof:
            return b""
        source = self.source
        if source is None:
            raise ValueError("Reader has no source: reset(source) first")
        state = self.state
        if state is not None and not state.compressed:
            # RFC 7692 §6: "An endpoint MAY send a message uncompressed" (RSV1 clear).
            parts: list[bytes] = []
            while data := source.read(n):
                if n >= 0:
                    return bytes(data)
                parts.append(bytes(data))
            self._eof = True
            return b"".join(parts)
        inflater = self._inflater
        checking = self._checking
        chunks: list[bytes] = []
        while True:
            out = inflater.read(n)
            if out:
                if checking:
                    self._text.feed(out)  # InvalidUTF8Error (1007) at the first bad byte
                if n >= 0:
                    return out
                chunks.append(out)
                continue
            if inflater.done:
                self._eof = True
                if checking:
                    self._text.end()  # RFC 3629: not inside a character
                break
            data = source.read(_READ_CHUNK)
            if data:
                inflater.feed(data)
            else:
                inflater.feed_eof()
        return b"".join(chunks)

    def readall(self) -> bytes:
        """The rest of the message, decompressed."""
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Decompress into ``buffer``; the number of bytes, 0 at the end of the message."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Nothing to release: the source belongs to the caller."""


class Writer:
    """Compresses one message at a time into ``dest``.

    ``parameters``/``client`` select this side's half of the agreement (a server
    compresses with the server's window and context rule). ``level`` (0-9) and
    ``mem_level`` (1-9) go to zlib. With ``state`` (the :class:`MessageState` given to
    the wsutil writer), the writer says per message whether RSV1 is set: a message can
    be sent uncompressed (``reset(compress=False)``), and a message shorter than
    ``threshold`` bytes is sent uncompressed (up to ``threshold`` bytes are held to
    decide). :meth:`close` ends the message; ``dest`` is never flushed or closed.
    """

    __slots__ = (
        "_compress",
        "_deflater",
        "_held",
        "_open",
        "_undecided",
        "dest",
        "state",
        "threshold",
    )

    def __init__(
        self,
        dest: Writable | None,
        *,
        parameters: Parameters = DEFAULT_PARAMETERS,
        client: bool = False,
        level: int = DEFAULT_LEVEL,
        mem_level: int = DEFAULT_MEM_LEVEL,
        state: MessageState | None = None,
        threshold: int = 0,
        factory: Callable[[], CompressObject] | None = None,
    ) -> None:
        if client:
            bits, nct = parameters.client_window_bits, parameters.client_no_context_takeover
        else:
            bits, nct = parameters.server_window_bits, parameters.server_no_context_takeover
        if threshold and state is None:
            raise ValueError("a threshold needs the MessageState that sets RSV1")
        self._deflater = Compressor(
            bits, no_context_takeover=nct, level=level, mem_level=mem_level, factory=factory
        )
        self.dest = dest
        self.state = state
        self.threshold = threshold
        self._held = bytearray()
        self._compress = True
        self._undecided = False
        self._open = False
        self.reset(dest)

    @property
    def compressor(self) -> Compressor:
        """The codec under this writer (its window lives across messages)."""
        return self._deflater

    def reset(self, dest: Writable | None = None, *, compress: bool = True) -> None:
        """Start the next message, into ``dest`` if given; ``compress=False`` sends it as is.

        An unfinished message's compressed state is dropped.
        """
        if self._open and self._compress and not self._undecided:
            # Half a message must not leak into the next one's context.
            self._deflater.reset()
        self._held = bytearray()
        self._open = True
        if dest is not None:
            self.dest = dest
        self._compress = compress
        self._undecided = compress and self.threshold > 0
        if self.state is not None:
            self.state.compressed = compress and not self._undecided

    def writable(self) -> bool:
        """True: this is a writable stream."""
        return True

    def _dest(self) -> Writable:
        dest = self.dest
        if dest is None:
            raise ValueError("Writer has no destination: reset(dest) first")
        return dest

    def write(self, data: BytesLike) -> int:
        """Compress ``data`` as the next part of the message; returns ``len(data)``."""
        if not self._open:
            raise ValueError("write() after close(): reset() starts the next message")
        size = len(data)
        if self._undecided:
            self._held += data
            if len(self._held) < self.threshold:
                return size
            self._decide(True)
            data = self._held
        if not self._compress:
            self._dest().write(data)
        else:
            out = self._deflater.compress(data)
            if out:
                self._dest().write(out)
        if data is self._held:
            self._held = bytearray()
        return size

    def _decide(self, compress: bool) -> None:
        self._undecided = False
        self._compress = compress
        if self.state is not None:
            self.state.compressed = compress

    def flush(self) -> None:
        """Write out all compressed so far, decodable at once (a sync flush)."""
        if not self._open or self._undecided or not self._compress:
            return
        out = self._deflater.flush()
        if out:
            self._dest().write(out)

    def close(self) -> None:
        """End the message: write the rest of its payload (without the 4-byte tail)."""
        if not self._open:
            return
        self._open = False
        if self._undecided:
            # RFC 7692 §6: an endpoint may send any message uncompressed (RSV1 clear).
            self._decide(False)
            if self._held:
                self._dest().write(self._held)
                self._held = bytearray()
            return
        if self._compress:
            out = self._deflater.finish()
            if out:
                self._dest().write(out)
