"""Stream adapters: unmask while reading, mask while writing, check UTF-8 while reading."""

from __future__ import annotations

from wsio._engine.mask import cipher, mask_into
from wsio._engine.utf8 import Utf8Validator
from wsio.exceptions import InvalidUTF8Error
from wsio.frameio import Sink, Source, write_all

__all__ = ["CipherReader", "CipherWriter", "UTF8Reader"]


def _read(stream: CipherReader | UTF8Reader, size: int) -> bytes:
    # read() in terms of readinto(), for both adapters.
    buffer = bytearray(size)
    n = stream.readinto(buffer)
    del buffer[n:]
    return bytes(buffer)


def _reader(source: Source) -> object:
    return getattr(source, "recv_into", None) or source.readinto  # type: ignore[union-attr]


class CipherReader:
    """Reads from ``source`` and unmasks with ``mask`` on the fly (RFC 6455 §5.3)."""

    def __init__(self, source: Source, mask: bytes) -> None:
        self.reset(source, mask)

    def reset(self, source: Source, mask: bytes) -> None:
        """Read from ``source`` with ``mask``, from the start of the mask."""
        self.source = source
        self._read = _reader(source)
        self.mask = mask
        self._offset = 0

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read and unmask into ``buffer``; 0 at end of stream."""
        view = memoryview(buffer).cast("B")
        n: int = self._read(view)  # type: ignore[operator]
        if n:
            cipher(view[:n], self.mask, self._offset)
            self._offset += n
        return n

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` unmasked bytes; ``b""`` at end of stream."""
        return _read(self, size)


class CipherWriter:
    """Masks what is written with ``mask`` (into a copy) and writes it to ``dest``.

    One thread at a time: its offset into the mask is shared by every write.
    """

    def __init__(self, dest: Sink, mask: bytes) -> None:
        self.reset(dest, mask)

    def reset(self, dest: Sink, mask: bytes) -> None:
        """Write to ``dest`` with ``mask``, from the start of the mask."""
        self.dest = dest
        self.mask = mask
        self._offset = 0
        self._scratch = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Mask ``data`` into a reused buffer and write it all; ``data`` is not changed."""
        n = len(data)
        if len(self._scratch) < n:
            self._scratch = bytearray(n)
        view = memoryview(self._scratch)[:n]
        mask_into(view, data, self.mask, self._offset)
        self._offset += n
        write_all(self.dest, view)
        return n


class UTF8Reader:
    """Reads from ``source`` and checks that the bytes are UTF-8 as they pass.

    A bad byte raises :class:`InvalidUTF8Error`; at end of stream, ``valid`` says
    whether the text also ended on a character boundary.
    """

    def __init__(self, source: Source) -> None:
        self._validator = Utf8Validator()
        self.reset(source)

    def reset(self, source: Source) -> None:
        """Check a new stream."""
        self.source = source
        self._read = _reader(source)
        self._validator.reset()
        self.accepted = 0

    @property
    def valid(self) -> bool:
        """True if everything read is UTF-8 and no character is cut short."""
        return self._validator.valid and not self._validator.incomplete

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into ``buffer`` and check it; 0 at end of stream."""
        view = memoryview(buffer).cast("B")
        n: int = self._read(view)  # type: ignore[operator]
        if n and not self._validator.feed(view[:n]):
            raise InvalidUTF8Error("stream is not valid UTF-8")
        self.accepted += n
        return n

    def read(self, size: int = 65536) -> bytes:
        """Up to ``size`` checked bytes; ``b""`` at end of stream."""
        return _read(self, size)
