"""Opcodes, close codes, state flags, constructors, close bodies, masking, compiled frames."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

import wsio
from wsio import CloseCode, OpCode, State


class TestOpCode:
    def test_values(self) -> None:
        assert [int(op) for op in OpCode] == [0, 1, 2, 8, 9, 10]

    @pytest.mark.parametrize("opcode", range(16))
    def test_predicates_on_raw_ints(self, opcode: int) -> None:
        assert wsio.is_control(opcode) == (opcode >= 8)
        assert wsio.is_data(opcode) == (opcode < 8)
        assert wsio.is_reserved(opcode) == (opcode in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15))

    def test_member_properties(self) -> None:
        assert OpCode.PING.is_control and not OpCode.PING.is_data
        assert OpCode.CONTINUATION.is_data and not OpCode.TEXT.is_reserved


class TestCloseCode:
    def test_includes_1012_to_1014(self) -> None:
        assert CloseCode(1012) is CloseCode.SERVICE_RESTART
        assert CloseCode(1013) is CloseCode.TRY_AGAIN_LATER
        assert CloseCode(1014) is CloseCode.BAD_GATEWAY

    @pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999])
    def test_sendable(self, code: int) -> None:
        assert wsio.is_sendable_close_code(code)
        wsio.check_close_frame_data(code, "")

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
    def test_not_sendable(self, code: int) -> None:
        assert not wsio.is_sendable_close_code(code)
        with pytest.raises(wsio.ProtocolError):
            wsio.check_close_frame_data(code, "x")

    def test_ranges(self) -> None:
        assert 999 in wsio.CLOSE_RANGE_NOT_USED and 1000 in wsio.CLOSE_RANGE_PROTOCOL
        assert 3000 in wsio.CLOSE_RANGE_APPLICATION and 4999 in wsio.CLOSE_RANGE_PRIVATE
        assert CloseCode.ABNORMAL_CLOSURE.is_protocol_reserved
        assert wsio.is_protocol_defined(1014) and not wsio.is_protocol_defined(1016)


def test_state_flags() -> None:
    state = State.SERVER_SIDE | State.EXTENDED
    assert state.server_side and state.extended and not state.client_side
    assert not state.fragmented and (state | State.FRAGMENTED).fragmented


class TestConstructors:
    def test_text_from_str_and_bytes(self) -> None:
        frame = wsio.new_text_frame("κόσμε")
        assert frame.header == wsio.Header(opcode=1, length=len("κόσμε".encode()))
        assert bytes(frame.payload) == "κόσμε".encode()
        payload = bytearray(b"abc")
        assert wsio.new_binary_frame(payload).payload is payload  # not copied

    @pytest.mark.parametrize("make", [wsio.new_ping_frame, wsio.new_pong_frame])
    def test_control_payload_limit(self, make: object) -> None:
        assert make(b"x" * 125).header.length == 125  # type: ignore[operator]
        with pytest.raises(wsio.LocalProtocolError):
            make(b"x" * 126)  # type: ignore[operator]

    def test_close_frame(self) -> None:
        frame = wsio.new_close_frame(wsio.close_frame_body(1001, "bye"))
        assert frame.header.opcode == 8 and bytes(frame.payload) == b"\x03\xe9bye"


class TestCloseBody:
    def test_round_trip(self) -> None:
        body = wsio.close_frame_body(CloseCode.GOING_AWAY, "goodbye!")
        assert wsio.parse_close_frame_data(body) == (1001, "goodbye!")

    def test_empty_body_means_no_status(self) -> None:
        assert wsio.parse_close_frame_data(b"") == (1005, "")

    def test_explicit_1005_on_the_wire_is_invalid(self) -> None:
        code, reason = wsio.parse_close_frame_data(b"\x03\xed")
        with pytest.raises(wsio.ProtocolError):
            wsio.check_close_frame_data(code, reason)

    def test_one_byte_body(self) -> None:
        with pytest.raises(wsio.ProtocolError):
            wsio.parse_close_frame_data(b"\x03")

    def test_invalid_utf8_reason(self) -> None:
        with pytest.raises(wsio.InvalidUTF8Error) as info:
            wsio.parse_close_frame_data(
                b"\x03\xe8\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
            )
        assert info.value.close_code == 1007

    def test_reason_of_123_bytes_is_kept(self) -> None:
        reason = "x" * 123
        assert wsio.parse_close_frame_data(wsio.close_frame_body(1000, reason)) == (1000, reason)

    @given(st.text(min_size=100, max_size=200))
    def test_long_reason_is_cut_on_a_character_boundary(self, reason: str) -> None:
        body = wsio.close_frame_body(1000, reason)
        assert len(body) <= 125
        code, parsed = wsio.parse_close_frame_data(body)
        assert code == 1000 and reason.startswith(parsed)


class TestMasking:
    def test_new_mask_is_random(self) -> None:
        masks = {wsio.new_mask() for _ in range(64)}
        assert len(masks) > 60 and all(len(m) == 4 for m in masks)

    @given(st.binary(max_size=200), st.binary(min_size=4, max_size=4))
    def test_mask_then_unmask(self, payload: bytes, mask: bytes) -> None:
        frame = wsio.new_binary_frame(payload)
        masked = wsio.mask_frame(frame, mask)
        assert frame.payload == payload and not frame.header.masked  # unchanged
        assert masked.header.masked and masked.header.mask == mask
        assert bytes(masked.payload) == bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert bytes(wsio.unmask_frame(masked).payload) == payload
        assert wsio.unmask_frame_in_place(masked) is masked
        assert bytes(masked.payload) == payload and not masked.header.masked

    def test_in_place_keeps_a_writable_buffer(self) -> None:
        payload = bytearray(b"Hello")
        frame = wsio.mask_frame_in_place(wsio.new_text_frame(payload), bytes.fromhex("37fa213d"))
        assert frame.payload is payload and payload == bytes.fromhex("7f9f4d5158")


class TestCompiledFrames:
    def test_compile_frame(self) -> None:
        assert wsio.compile_frame(wsio.new_text_frame(b"Hello")) == bytes.fromhex("810548656c6c6f")

    def test_precompiled(self) -> None:
        assert wsio.COMPILED_PING == b"\x89\x00"
        assert wsio.COMPILED_PONG == b"\x8a\x00"
        assert wsio.COMPILED_CLOSE == b"\x88\x00"
        assert wsio.COMPILED_CLOSE_NORMAL_CLOSURE == b"\x88\x02\x03\xe8"
        assert wsio.COMPILED_CLOSE_MESSAGE_TOO_BIG == b"\x88\x02\x03\xf1"
        assert wsio.COMPILED_CLOSE_INTERNAL_ERROR == b"\x88\x02\x03\xf3"


def test_masks_differ_across_threads_and_forks() -> None:
    import os
    import threading

    seen: list[bytes] = []
    threads = [threading.Thread(target=lambda: seen.extend(wsio.new_mask() for _ in range(2000)))]
    threads.append(
        threading.Thread(target=lambda: seen.extend(wsio.new_mask() for _ in range(2000)))
    )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) > 3900  # 4000 draws of 32 random bits: collisions are rare
    read, write = os.pipe()
    wsio.new_mask()  # the parent's pool is filled
    pid = os.fork()
    if pid == 0:
        os.write(write, b"".join(wsio.new_mask() for _ in range(8)))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 32)
    parent = b"".join(wsio.new_mask() for _ in range(8))
    os.close(read)
    os.close(write)
    assert child != parent
