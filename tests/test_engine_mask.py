"""wsio._engine.mask: cipher() and mask_into(), compiled and pure."""

from __future__ import annotations

import array
import importlib.util
import itertools
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings, strategies as st

import wsio
from wsio._engine import mask as engine_mask
from wsio._engine.mask import cipher, mask_into
from wsio._engine.protocol import ClientProtocol

MASK_SOURCE = Path(engine_mask.__file__ or "").with_name("mask.py")


@contextmanager
def _no_cython() -> Iterator[None]:
    """Make ``import cython`` fail, as on a machine without Cython."""
    saved = sys.modules.get("cython")
    sys.modules["cython"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["cython"]
        else:
            sys.modules["cython"] = saved


def _load_source(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, MASK_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The uncompiled module, loaded from mask.py whichever path `wsio` itself uses; and the
# same file again with Cython absent, so the no-Cython stub (_cython.py) is exercised.
pure = _load_source("_wsio_pure_mask")
with _no_cython():
    stubbed = _load_source("_wsio_stub_mask")

IMPLEMENTATIONS = [engine_mask, pure, stubbed]
IDS = ["loaded", "pure", "no-cython"]


def naive(data: bytes, key: bytes, offset: int = 0) -> bytes:
    """RFC 6455 §5.3, literally: octet i XOR masking-key octet (i MOD 4)."""
    return bytes(b ^ key[(offset + i) % 4] for i, b in enumerate(data))


def test_pure_modules_are_pure() -> None:
    assert (pure.__file__ or "").endswith(".py")
    assert not pure.cython.compiled
    assert stubbed.cython.__name__ == "wsio._engine._cython"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_rfc6455_section_5_7_masked_hello(impl: ModuleType) -> None:
    # RFC 6455 §5.7: "A single-frame masked text message
    #   0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58 (contains "Hello")"
    payload = bytearray(b"\x7f\x9f\x4d\x51\x58")
    impl.cipher(payload, b"\x37\xfa\x21\x3d")
    assert payload == b"Hello"
    impl.cipher(payload, b"\x37\xfa\x21\x3d")
    assert payload == b"\x7f\x9f\x4d\x51\x58"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_rfc6455_hello_in_chunks_with_offset(impl: ModuleType) -> None:
    payload = bytearray(b"\x7f\x9f\x4d\x51\x58")
    view = memoryview(payload)
    impl.cipher(view[:3], b"\x37\xfa\x21\x3d", 0)
    impl.cipher(view[3:], b"\x37\xfa\x21\x3d", 3)
    assert payload == b"Hello"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_empty_buffer(impl: ModuleType) -> None:
    buf = bytearray()
    impl.cipher(buf, b"abcd", 7)
    assert buf == b""
    impl.mask_into(bytearray(), b"", b"abcd")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize("size", [1, 3, 7, 8, 9, 31, 32, 33, 1023, 1024, 1025, 4096 + 13])
@pytest.mark.parametrize("start", [0, 1, 5, 8, 13, 16, 31])
def test_view_slices_with_any_start_and_size(impl: ModuleType, size: int, start: int) -> None:
    # Sizes across the word/vector/alignment boundaries of the compiled loop, from views
    # that start at every alignment; bytes around the slice must stay untouched.
    original = bytes((i * 37 + 11) & 0xFF for i in range(start + size + 40))
    buf = bytearray(original)
    key = b"\x01\x80\xfe\x5a"
    for offset in (0, 1, 2, 3, 4097):
        buf[:] = original
        impl.cipher(memoryview(buf)[start : start + size], key, offset)
        expected = original[:start] + naive(original[start : start + size], key, offset)
        assert buf == expected + original[start + size :]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_mask_types(impl: ModuleType) -> None:
    data = bytes(range(50))
    for key in (b"wxyz", bytearray(b"wxyz"), memoryview(b"__wxyz__")[2:6]):
        buf = bytearray(data)
        impl.cipher(buf, key, 1)
        assert buf == naive(data, b"wxyz", 1)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_non_byte_formats_are_masked_as_raw_bytes(impl: ModuleType) -> None:
    words = array.array("H", range(300))
    raw = words.tobytes()
    impl.cipher(memoryview(words), b"abcd", 2)
    assert words.tobytes() == naive(raw, b"abcd", 2)
    grid = bytearray(raw)
    impl.cipher(memoryview(grid).cast("B", (20, 30)), b"abcd")
    assert grid == naive(raw, b"abcd")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize(
    "buf",
    [b"abcdef", memoryview(b"abcdef"), memoryview(bytearray(b"abcdef")).toreadonly(), b""],
    ids=["bytes", "view-of-bytes", "readonly-view", "empty-bytes"],
)
def test_read_only_buffer_is_rejected(impl: ModuleType, buf: bytes | memoryview) -> None:
    with pytest.raises(TypeError, match="writable buffer"):
        impl.cipher(buf, b"abcd")
    with pytest.raises(TypeError, match="writable buffer"):
        impl.mask_into(buf, b"", b"abcd")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_non_contiguous_view_is_rejected(impl: ModuleType) -> None:
    buf = bytearray(b"abcdefgh")
    with pytest.raises(BufferError):
        impl.cipher(memoryview(buf)[::2], b"abcd")
    with pytest.raises(BufferError):
        impl.mask_into(bytearray(8), memoryview(buf)[::2], b"abcd")
    assert buf == b"abcdefgh"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_not_a_buffer(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.cipher("text", b"abcd")
    with pytest.raises(TypeError):
        impl.cipher(bytearray(4), "abcd")
    with pytest.raises(TypeError):
        impl.mask_into(bytearray(4), "text", b"abcd")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytearray(8)])
def test_mask_must_be_four_bytes(impl: ModuleType, key: bytes) -> None:
    buf = bytearray(b"payload")
    with pytest.raises(ValueError, match="4 bytes"):
        impl.cipher(buf, key)
    with pytest.raises(ValueError, match="4 bytes"):
        impl.mask_into(bytearray(7), b"payload", key)
    assert buf == b"payload"


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_mask_into_short_dest(impl: ModuleType) -> None:
    dest = bytearray(4)
    with pytest.raises(ValueError, match="dest holds 4 bytes, src has 5"):
        impl.mask_into(dest, b"hello", b"abcd")
    assert dest == bytes(4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_mask_into_leaves_the_rest_of_dest(impl: ModuleType) -> None:
    dest = bytearray(b"." * 2000)
    src = bytes(range(256)) * 6
    impl.mask_into(memoryview(dest)[3:], src, b"\x00\xff\x10\x01", 1)
    assert dest[:3] == b"..."
    assert dest[3 : 3 + len(src)] == naive(src, b"\x00\xff\x10\x01", 1)
    assert dest[3 + len(src) :] == b"." * (2000 - 3 - len(src))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize("shift", [-9, -3, -1, 1, 3, 8, 33])
@pytest.mark.parametrize("size", [5, 40, 1500])
def test_mask_into_overlapping_views(impl: ModuleType, shift: int, size: int) -> None:
    # As if src were copied out first (memmove semantics), whatever the overlap.
    original = bytes((i * 7 + 3) & 0xFF for i in range(size + 80))
    buf = bytearray(original)
    view = memoryview(buf)
    src_start = 40
    dest_start = src_start + shift
    impl.mask_into(
        view[dest_start : dest_start + size], view[src_start : src_start + size], b"k3y!", 2
    )
    expected = bytearray(original)
    expected[dest_start : dest_start + size] = naive(
        original[src_start : src_start + size], b"k3y!", 2
    )
    assert buf == expected


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_mask_into_same_buffer_is_in_place(impl: ModuleType) -> None:
    buf = bytearray(range(200))
    impl.mask_into(buf, buf, b"abcd", 3)
    assert buf == naive(bytes(range(200)), b"abcd", 3)


# Hypothesis: chunks, offsets, and the paths agreeing with one another.

payloads = st.binary(max_size=5000)
keys = st.binary(min_size=4, max_size=4)
offsets = st.integers(min_value=0, max_value=2**62)


@st.composite
def split_points(draw: st.DrawFn, size: int) -> list[int]:
    cuts = draw(st.lists(st.integers(min_value=0, max_value=size), max_size=8))
    return sorted({0, size, *cuts})


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@given(data=payloads, key=keys, offset=offsets, draw=st.data())
@settings(max_examples=150)
def test_chunked_equals_one_shot_equals_naive(
    impl: ModuleType, data: bytes, key: bytes, offset: int, draw: st.DataObject
) -> None:
    cuts = draw.draw(split_points(len(data)))
    one_shot = bytearray(data)
    impl.cipher(one_shot, key, offset)
    chunked = bytearray(data)
    view = memoryview(chunked)
    for start, end in itertools.pairwise(cuts):
        impl.cipher(view[start:end], key, offset + start)
    assert one_shot == chunked == naive(data, key, offset)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@given(data=payloads, key=keys, offset=offsets, spare=st.integers(0, 40))
@settings(max_examples=150)
def test_mask_into_equals_copy_then_cipher(
    impl: ModuleType, data: bytes, key: bytes, offset: int, spare: int
) -> None:
    dest = bytearray(b"\xaa" * (len(data) + spare))
    impl.mask_into(dest, data, key, offset)
    copied = bytearray(data)
    impl.cipher(copied, key, offset)
    assert dest[: len(data)] == copied
    assert dest[len(data) :] == b"\xaa" * spare


@given(
    data=payloads,
    key=keys,
    offset=offsets,
    start=st.integers(0, 64),
    into_start=st.integers(0, 64),
)
@settings(max_examples=300)
def test_loaded_module_matches_pure_source(
    data: bytes, key: bytes, offset: int, start: int, into_start: int
) -> None:
    # The compiled module (when built) against the same file run as Python.
    padded = bytes(start) + data
    a = bytearray(padded)
    b = bytearray(padded)
    engine_mask.cipher(memoryview(a)[start:], key, offset)
    pure.cipher(memoryview(b)[start:], key, offset)
    assert a == b
    c = bytearray(into_start + len(data))
    d = bytearray(into_start + len(data))
    engine_mask.mask_into(memoryview(c)[into_start:], data, key, offset)
    pure.mask_into(memoryview(d)[into_start:], data, key, offset)
    assert c == d


def test_public_names() -> None:
    assert engine_mask.__all__ == ["cipher", "mask_into", "new_mask"]
    assert cipher is engine_mask.cipher
    assert mask_into is engine_mask.mask_into
    assert wsio.new_mask is engine_mask.new_mask


# -- masking keys (RFC 6455 §5.3) --------------------------------------------------------


def _client_keys(protocol: ClientProtocol, count: int) -> list[bytes]:
    """The masking keys of ``count`` short binary frames the client queues."""
    keys = []
    for _ in range(count):
        protocol.send_binary(b"k")
        (wire,) = protocol.data_to_send()
        keys.append(bytes(wire[2:6]))  # a 1-byte payload: 2 header bytes, then the key
    return keys


def test_masking_keys_are_drawn_from_os_urandom_a_pool_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws: list[int] = []
    real = os.urandom

    def counting(n: int) -> bytes:
        draws.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    keys = [engine_mask.new_mask() for _ in range(2048)]
    keys += _client_keys(ClientProtocol(), 2048)
    # 4096 keys of 4 bytes: four 4 KiB draws, and one more if the pool was part used.
    assert sum(draws) <= 5 * 4096 and set(draws) == {4096}
    assert len(set(keys)) > 4090  # 4096 draws of 32 random bits: collisions are rare
    assert all(len(key) == 4 for key in keys)


def test_a_forked_client_does_not_reuse_its_parents_masking_keys() -> None:
    protocol = ClientProtocol()
    _client_keys(protocol, 1)  # the parent's pool holds keys it has yet to hand out
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(write, b"".join(_client_keys(protocol, 8)))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 32)
    os.close(read)
    os.close(write)
    parent = b"".join(_client_keys(protocol, 8))
    assert len(child) == 32 and child != parent
