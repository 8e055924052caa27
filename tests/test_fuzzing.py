"""The fuzz targets, fed by Hypothesis: any bytes give a result or a documented error."""

from __future__ import annotations

import pytest
from fuzzing.targets import TARGETS
from hypothesis import HealthCheck, given, settings, strategies as st

# Mostly-valid inputs reach deeper than uniform noise: mix real prefixes in.
PREFIXES = [
    b"",
    b"\x00\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
    b"\x03\x01\x83abcd\x80\x80\x82abcd\x89\x80abcd",
    b"\x05GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n",
    b"\x00HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
]


@pytest.mark.parametrize("name", sorted(TARGETS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), data=st.binary(max_size=600))
def test_target(name: str, prefix: bytes, data: bytes) -> None:
    TARGETS[name](prefix + data)
