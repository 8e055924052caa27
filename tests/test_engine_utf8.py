"""wsio._engine.utf8: the incremental validator, compiled and pure, against Python's decoder."""

from __future__ import annotations

import array
import codecs
import importlib.util
import itertools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings, strategies as st

from wsio._engine import utf8 as engine_utf8
from wsio._engine.utf8 import Utf8Validator, is_valid_utf8

UTF8_SOURCE = Path(engine_utf8.__file__ or "").with_name("utf8.py")


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
    spec = importlib.util.spec_from_file_location(name, UTF8_SOURCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The uncompiled module, loaded from utf8.py whichever path `wsio` itself uses; and the
# same file again with Cython absent, so the no-Cython stub (_cython.py) is exercised.
pure = _load_source("_wsio_pure_utf8")
with _no_cython():
    stubbed = _load_source("_wsio_stub_utf8")

IMPLEMENTATIONS = [engine_utf8, pure, stubbed]
IDS = ["loaded", "pure", "no-cython"]


# The oracle: Python's one-shot decoder, and when a strict validator must notice.


@dataclass
class Expected:
    feeds: list[bool]  # what each feed() returns
    final: bool  # what feed(b"", final=True) returns afterwards
    error_offset: int  # -1 if valid
    incomplete: list[bool]  # .incomplete after each feed


def expected(chunks: Sequence[bytes]) -> Expected:
    data = b"".join(chunks)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = exc.start
        # The byte from which no continuation can make the stream valid: a bad lead byte
        # is itself; a bad continuation is exc.end (the bytes before it are a valid
        # prefix of a character); a cut-off character is only known bad at the end.
        if exc.reason == "invalid start byte":
            detect: int | None = exc.start
        elif exc.reason == "invalid continuation byte":
            detect = exc.end
        else:
            assert exc.reason == "unexpected end of data", exc.reason
            detect = None
    else:
        error = -1
        detect = None
    feeds = []
    incomplete = []
    end = 0
    for chunk in chunks:
        end += len(chunk)
        ok = detect is None or end <= detect
        feeds.append(ok)
        _, used = codecs.utf_8_decode(data[:end], "strict", False) if ok else ("", end)
        incomplete.append(ok and used < end)
    return Expected(feeds, error < 0, error, incomplete)


def check_stream(impl: ModuleType, chunks: Sequence[bytes]) -> None:
    want = expected(chunks)
    validator = impl.Utf8Validator()
    got = []
    incomplete = []
    for chunk in chunks:
        got.append(validator.feed(chunk))
        incomplete.append(validator.incomplete)
        assert validator.valid == got[-1]
    assert got == want.feeds
    assert incomplete == want.incomplete
    assert validator.feed(b"", final=True) == want.final
    assert validator.valid == want.final
    assert validator.error_offset == want.error_offset
    assert not validator.incomplete
    assert impl.is_valid_utf8(b"".join(chunks)) == want.final


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_pure_modules_are_pure() -> None:
    assert (pure.__file__ or "").endswith(".py")
    assert not pure.cython.compiled
    assert stubbed.cython.__name__ == "wsio._engine._cython"


# Vectors: gobwas/ws's utf8 tests and the Autobahn|Testsuite 6.x cases.


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_gobwas_vectors(impl: ModuleType) -> None:
    # cebae1bdb9cf83cebcceb5 eda080 656469746564: "κόσμε", a surrogate, "edited".
    data = bytes.fromhex("cebae1bdb9cf83cebcceb5eda080656469746564")
    v = impl.Utf8Validator()
    assert not v.feed(data)
    assert v.error_offset == 11  # invalid after 11 bytes
    # Byte by byte, it fails at the second byte of the surrogate (A0), not before.
    v.reset()
    results = [v.feed(b) for b in byte_by_byte(data)]
    assert results == [True] * 12 + [False] * (len(data) - 12)
    assert v.error_offset == 11

    v.reset()
    assert v.feed(bytes.fromhex("7f7f7fdf"))
    assert v.valid and v.incomplete and v.error_offset == -1
    assert not v.feed(b"", final=True)
    assert v.error_offset == 3

    v.reset()
    assert v.feed(bytes.fromhex("dfbf"), final=True)
    assert v.valid and not v.incomplete


# Autobahn 6.4.x, "fail fast on invalid UTF-8": the bytes of each frame (or chop).
FAIL_FAST = {
    "6.4.1": ["cebae1bdb9cf83cebcceb5", "f4908080", "656469746564"],
    "6.4.2": ["cebae1bdb9cf83cebcceb5f4", "90", "8080656469746564"],
    "6.4.3": ["cebae1bdb9cf83cebcceb5", "f4908080", "656469746564"],
    "6.4.4": ["cebae1bdb9cf83cebcceb5f4", "90", "8080656469746564"],
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize("case", sorted(FAIL_FAST))
def test_autobahn_fail_fast(impl: ModuleType, case: str) -> None:
    chunks = [bytes.fromhex(h) for h in FAIL_FAST[case]]
    v = impl.Utf8Validator()
    assert v.feed(chunks[0])
    assert not v.feed(chunks[1])  # F4 90: above U+10FFFF, whatever follows
    assert v.error_offset == 11
    assert not v.feed(chunks[2])


# Autobahn 6.5-6.23 (from Markus Kuhn's UTF-8 decoder stress test), as (hex, valid).
AUTOBAHN_VECTORS = [
    # 6.5-6.6: "κόσμε" and its pieces
    ("cebae1bdb9cf83cebcceb5", True),
    ("ce", False),
    ("cebae1", False),
    ("cebae1bd", False),
    ("cebae1bdb9cf83cebcce", False),
    # 6.7: first possible sequence of each length
    ("00", True),
    ("c280", True),
    ("e0a080", True),
    ("f0908080", True),
    # 6.8: 5- and 6-byte sequences
    ("f888808080", False),
    ("fc8480808080", False),
    # 6.9: last possible sequence of each length
    ("7f", True),
    ("dfbf", True),
    ("efbfbf", True),
    ("f48fbfbf", True),
    # 6.10: beyond U+10FFFF
    ("f7bfbfbf", False),
    ("fbbfbfbfbf", False),
    ("fdbfbfbfbfbf", False),
    # 6.11: other boundaries
    ("ed9fbf", True),
    ("ee8080", True),
    ("efbfbd", True),
    ("f48fbfbf", True),
    ("f4908080", False),
    # 6.12: unexpected continuation bytes
    ("80", False),
    ("bf", False),
    ("80bf", False),
    ("80bf80", False),
    ("80bf80bf", False),
    ("80bf80bf80", False),
    ("80bf80bf80bf", False),
    (bytes(range(0x80, 0xC0)).hex(), False),
    # 6.13: lonely start bytes
    ("".join(f"{b:02x}20" for b in range(0xC0, 0xE0)), False),
    ("".join(f"{b:02x}20" for b in range(0xE0, 0xF0)), False),
    ("".join(f"{b:02x}20" for b in range(0xF0, 0xF8)), False),
    ("f820f920fa20fb20", False),
    ("fc20fd20", False),
    # 6.14: last continuation byte missing
    ("c0", False),
    ("e080", False),
    ("f08080", False),
    ("f8808080", False),
    ("fc80808080", False),
    ("df", False),
    ("efbf", False),
    ("f7bfbf", False),
    ("fbbfbfbf", False),
    ("fdbfbfbfbf", False),
    # 6.15: all of 6.14 concatenated
    ("c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf", False),
    # 6.16: impossible bytes
    ("fe", False),
    ("ff", False),
    ("fefeffff", False),
    # 6.17: overlong "/"
    ("c0af", False),
    ("e080af", False),
    ("f08080af", False),
    ("f8808080af", False),
    ("fc80808080af", False),
    # 6.18: maximum overlongs
    ("c1bf", False),
    ("e09fbf", False),
    ("f08fbfbf", False),
    ("f887bfbfbf", False),
    ("fc83bfbfbfbf", False),
    # 6.19: overlong NUL
    ("c080", False),
    ("e08080", False),
    ("f0808080", False),
    ("f880808080", False),
    ("fc8080808080", False),
    # 6.20: single UTF-16 surrogates
    ("eda080", False),
    ("edadbf", False),
    ("edae80", False),
    ("edafbf", False),
    ("edb080", False),
    ("edbe80", False),
    ("edbfbf", False),
    # 6.21: paired UTF-16 surrogates
    ("eda080edb080", False),
    ("eda080edbfbf", False),
    ("edadbfedb080", False),
    ("edadbfedbfbf", False),
    ("edae80edb080", False),
    ("edae80edbfbf", False),
    ("edafbfedb080", False),
    ("edafbfedbfbf", False),
    # 6.22: noncharacters are valid UTF-8
    ("efbfbe", True),
    ("efbfbf", True),
    ("f09fbfbe", True),
    ("f09fbfbf", True),
    ("f3bfbfbe", True),
    ("f48fbfbf", True),
    ("efb790", True),
    ("efb7af", True),
    # 6.23: U+FFFD, and a few more around it
    ("efbfbd", True),
    ("61efbfbd62", True),
]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@pytest.mark.parametrize(("hex_bytes", "valid"), AUTOBAHN_VECTORS)
def test_autobahn_vectors(impl: ModuleType, hex_bytes: str, valid: bool) -> None:
    data = bytes.fromhex(hex_bytes)
    assert impl.is_valid_utf8(data) == valid
    check_stream(impl, [data])
    check_stream(impl, byte_by_byte(data))
    # Inside a long stretch (the compiled path's vector check), at every alignment.
    for before, after in [("a" * 70, "b" * 70), ("κόσμε" * 9, "édité" * 9)]:
        for shift in range(0, 33, 3):
            context = ("x" * shift + before).encode(), after.encode()
            check_stream(impl, [context[0] + data + context[1]])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_every_two_and_three_byte_prefix(impl: ModuleType) -> None:
    # All 65536 two-byte starts, each as a whole and cut into single bytes.
    v = impl.Utf8Validator()
    for first, second in itertools.product(range(256), repeat=2):
        data = bytes((first, second))
        want = expected([data[:1], data[1:]])
        v.reset()
        assert [v.feed(data[:1]), v.feed(data[1:])] == want.feeds, data.hex()
        assert v.feed(b"", final=True) == want.final, data.hex()
        assert v.error_offset == want.error_offset, data.hex()
    # Three-byte starts whose first two could begin a character.
    for first, second, third in itertools.product(
        range(0xE0, 0xF5), range(0x70, 0xC8), (0x00, 0x7F, 0x80, 0x8F, 0x90, 0xBF, 0xC0)
    ):
        data = bytes((first, second, third))
        check_stream(impl, [data[:2], data[2:]])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_every_code_point_at_every_alignment(impl: ModuleType) -> None:
    # Characters of every length straddling the 32-byte blocks of the vector check.
    sample = "".join(chr(c) for c in range(0, 0x110000, 97) if not 0xD800 <= c < 0xE000)
    encoded = sample.encode()
    for shift in range(33):
        data = b"." * shift + encoded
        assert impl.is_valid_utf8(data)
        # A cut at every alignment of the end leaves a valid prefix or an unfinished one.
        cut = data[: 64 + shift * 3]
        check_stream(impl, [cut])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_errors_anywhere_in_a_long_stream(impl: ModuleType) -> None:
    text = ("Hello, κόσμε! 敏捷的狐狸 😀🎉 " * 12).encode()
    for pos in range(200):
        for bad in (0x80, 0xC0, 0xED, 0xF4, 0xFF):
            data = bytearray(text)
            data[pos] = bad
            check_stream(impl, [bytes(data)])
        check_stream(impl, [text[:pos], text[pos:]])


# The API.


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_invalid_is_sticky_until_reset(impl: ModuleType) -> None:
    v = impl.Utf8Validator()
    assert v.feed(b"ok ")
    assert not v.feed(b"\xff")
    assert v.error_offset == 3
    assert not v.feed(b"fine")
    assert not v.feed(b"", final=True)
    assert not v.valid and not v.incomplete and v.error_offset == 3
    v.reset()
    assert v.valid and not v.incomplete and v.error_offset == -1
    assert v.feed(b"\xe2\x82")
    assert not v.feed(b"\xff")
    assert v.error_offset == 0  # offsets count from the reset


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_offsets_are_absolute_across_feeds(impl: ModuleType) -> None:
    v = impl.Utf8Validator()
    for _ in range(1000):
        assert v.feed(b"0123456789")
    assert v.feed("€".encode()[:1])
    assert v.feed(b"")
    assert v.feed("€".encode()[1:2])
    assert v.incomplete
    assert not v.feed(b"x")
    assert v.error_offset == 10_000


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_buffer_types(impl: ModuleType) -> None:
    text = "naïve café ☕ ".encode() * 10
    for data in (
        text,
        bytearray(text),
        memoryview(text),
        memoryview(b"\xff" + text + b"\xff")[1:-1],
        memoryview(bytearray(text)).toreadonly(),
    ):
        v = impl.Utf8Validator()
        assert v.feed(data, final=True)
        assert impl.is_valid_utf8(data)
    # Other formats are checked as their raw bytes.
    for words in (array.array("H", [0xA9C3, 0x4141]), array.array("H", [0xC3A9, 0x4141])):
        raw = words.tobytes()
        assert impl.Utf8Validator().feed(memoryview(words), final=True) == (expected([raw]).final)
        assert impl.is_valid_utf8(memoryview(words)) == expected([raw]).final
    with pytest.raises(TypeError):
        impl.Utf8Validator().feed("text")
    with pytest.raises(TypeError):
        impl.is_valid_utf8("text")
    with pytest.raises(BufferError):
        impl.Utf8Validator().feed(memoryview(text)[::2])


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
def test_empty(impl: ModuleType) -> None:
    v = impl.Utf8Validator()
    assert v.feed(b"")
    assert v.feed(b"", final=True)
    assert impl.is_valid_utf8(b"")


# Hypothesis: arbitrary bytes in arbitrary chunks agree with Python's decoder.


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Mostly UTF-8 text, often with a damaged byte, sometimes raw bytes."""
    kind = draw(st.sampled_from(["text", "damaged", "binary", "spliced"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    data = draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "damaged" and data:
        pos = draw(st.integers(0, len(data) - 1))
        data = data[:pos] + bytes([draw(st.integers(0x80, 0xFF))]) + data[pos + 1 :]
    elif kind == "spliced":
        extra = draw(st.binary(min_size=1, max_size=4))
        pos = draw(st.integers(0, len(data)))
        data = data[:pos] + extra + data[pos:]
    return data


@st.composite
def chunked(draw: st.DrawFn) -> list[bytes]:
    data = draw(streams())
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=10))
    bounds = sorted({0, len(data), *cuts})
    return [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=IDS)
@given(chunks=chunked())
@settings(max_examples=300)
def test_agrees_with_python_decoder(impl: ModuleType, chunks: list[bytes]) -> None:
    check_stream(impl, chunks)


@given(chunks=chunked())
@settings(max_examples=500)
def test_loaded_module_matches_pure_source(chunks: list[bytes]) -> None:
    # The compiled module (when built) against the same file run as Python, feed by feed.
    a = engine_utf8.Utf8Validator()
    b = pure.Utf8Validator()
    for chunk in chunks:
        assert a.feed(chunk) == b.feed(chunk)
        assert (a.valid, a.incomplete, a.error_offset) == (b.valid, b.incomplete, b.error_offset)
    assert a.feed(b"", final=True) == b.feed(b"", final=True)
    assert (a.valid, a.incomplete, a.error_offset) == (b.valid, b.incomplete, b.error_offset)
    data = b"".join(chunks)
    assert engine_utf8.is_valid_utf8(data) == pure.is_valid_utf8(data)


@given(data=st.binary(max_size=2000))
@settings(max_examples=300)
def test_is_valid_utf8_on_raw_bytes(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        valid = False
    else:
        valid = True
    assert is_valid_utf8(data) == valid
    v = Utf8Validator()
    v.feed(data, final=True)
    assert v.valid == valid


def test_public_names() -> None:
    assert engine_utf8.__all__ == ["Utf8Validator", "is_valid_utf8"]
