"""wsutil's stream adapters: unmask while reading, mask while writing, UTF-8 while reading."""

from __future__ import annotations

import io

import pytest

import wsio
from wsio import wsutil

MASK = bytes.fromhex("37fa213d")


def test_cipher_reader_unmasks_across_reads() -> None:
    # RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    reader = wsutil.CipherReader(io.BytesIO(bytes.fromhex("7f9f4d5158")), MASK)
    assert reader.read(2) + reader.read(1) + reader.read(10) == b"Hello"
    assert reader.read(10) == b""


def test_cipher_writer_masks_a_copy() -> None:
    sink = io.BytesIO()
    writer = wsutil.CipherWriter(sink, MASK)
    data = bytearray(b"Hel")
    writer.write(data)
    writer.write(b"lo")
    assert data == b"Hel"  # the caller's bytes are not changed
    assert sink.getvalue() == bytes.fromhex("7f9f4d5158")
    writer.reset(io.BytesIO(), MASK)  # the mask starts over


def test_utf8_reader() -> None:
    text = "κόσμε".encode()
    reader = wsutil.UTF8Reader(io.BytesIO(text))
    assert reader.read(3) + reader.read(100) == text
    assert reader.valid and reader.accepted == len(text)
    cut = wsutil.UTF8Reader(io.BytesIO(text[:-1]))
    assert cut.read(100) == text[:-1]
    assert not cut.valid  # ends inside a character
    bad = wsutil.UTF8Reader(io.BytesIO(b"ok\xc0\xaf"))
    with pytest.raises(wsio.InvalidUTF8Error):
        bad.read(100)
