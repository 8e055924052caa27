"""FrameParser against a peer that declares more than it sends (issue 8, items 4 and 10).

Each test fails on the parser before the fix: ``get_buffer`` doubled its buffer on
every call while a declared frame was incomplete (16 MiB after 23 bytes), and in
compiled mode a length near 2**63 raised OverflowError where pure mode waited.
"""

from __future__ import annotations

import pytest

from wsio._engine.framing import FrameParser
from wsio._engine.protocol import ServerProtocol


def _header(length: int) -> bytes:
    """A masked binary frame's header declaring ``length`` bytes (64-bit length form)."""
    return b"\x82\xff" + length.to_bytes(8, "big") + b"\x00\x00\x00\x00"


def test_get_buffer_does_not_grow_while_a_declared_frame_is_incomplete() -> None:
    parser = FrameParser(max_frame_size=2**62, buffer_size=1024)
    parser.feed(_header(2**40)[:2] + _header(2**40)[2:] + b"x" * 9)
    assert parser.next_frame() is None
    for _ in range(100):
        view = parser.get_buffer()
    # Nothing arrived since: the buffer is the one the bytes needed, not 2**100 bytes.
    assert parser.buffered + len(view) <= 1024


def test_get_buffer_grows_once_arrived_bytes_fill_it() -> None:
    parser = FrameParser(max_frame_size=2**20, buffer_size=64)
    parser.feed(b"\x82\x7e\x01\x00" + b"y" * 60)  # a 256-byte frame, 60 bytes of it
    assert parser.next_frame() is None
    view = parser.get_buffer()
    assert parser.buffered == 64 and len(view) == 64  # full: doubled once
    view[:64] = b"y" * 64
    parser.buffer_updated(64)
    assert parser.next_frame() is None
    assert len(parser.get_buffer()) == 128  # full again: doubled again, no more


@pytest.mark.parametrize("length", [2**63 - 1, 2**63 - 14, 2**63 - 15, 2**62])
def test_huge_declared_length_within_the_limit_waits_for_bytes(length: int) -> None:
    parser = FrameParser(max_frame_size=2**63 - 1)
    parser.feed(_header(length))
    assert parser.next_frame() is None  # compiled and pure alike: no OverflowError
    assert parser.buffered == 14


def test_protocol_with_no_frame_limit_waits_and_stays_small() -> None:
    proto = ServerProtocol(max_frame_size=None, max_message_size=None)
    proto.receive_data(_header(2**63 - 1) + b"z" * 100)
    for _ in range(50):
        view = proto.get_buffer()
    assert proto.error is None
    assert len(view) <= 4096
    assert proto.events_received() == []
