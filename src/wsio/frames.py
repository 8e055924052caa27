"""Frames: opcodes, close codes, state flags, constructors, close bodies and masking.

Everything here works on values in memory; reading and writing frames on a socket or
a file is in :mod:`wsio.frameio`. The header codec and the RFC 6455 §5 checks are in
the compiled engine and re-exported here.
"""

from __future__ import annotations

import enum

from wsio._engine.framing import (
    MAX_CONTROL_PAYLOAD,
    MAX_HEADER_SIZE,
    MIN_HEADER_SIZE,
    Frame,
    Header,
    check_header,
    encode_header,
    header_size,
)

# new_mask: a fresh, unpredictable 4-byte masking key (RFC 6455 §5.3: "derived from a
# strong source of entropy"), os.urandom's bytes handed out from a pool 4 at a time.
from wsio._engine.mask import cipher, new_mask
from wsio._engine.utf8 import is_valid_utf8
from wsio.exceptions import InvalidUTF8Error, LocalProtocolError, ProtocolError

__all__ = [
    "OpCode",
    "CONTINUATION",
    "TEXT",
    "BINARY",
    "CLOSE",
    "PING",
    "PONG",
    "DATA_OPCODES",
    "CONTROL_OPCODES",
    "is_control",
    "is_data",
    "is_reserved",
    "CloseCode",
    "CLOSE_RANGE_NOT_USED",
    "CLOSE_RANGE_PROTOCOL",
    "CLOSE_RANGE_APPLICATION",
    "CLOSE_RANGE_PRIVATE",
    "is_protocol_defined",
    "is_protocol_reserved",
    "is_sendable_close_code",
    "State",
    "Header",
    "Frame",
    "MAX_HEADER_SIZE",
    "MIN_HEADER_SIZE",
    "MAX_CONTROL_PAYLOAD",
    "header_size",
    "check_header",
    "new_frame",
    "new_text_frame",
    "new_binary_frame",
    "new_ping_frame",
    "new_pong_frame",
    "new_close_frame",
    "close_frame_body",
    "parse_close_frame_data",
    "check_close_frame_data",
    "new_mask",
    "cipher",
    "mask_frame",
    "mask_frame_in_place",
    "unmask_frame",
    "unmask_frame_in_place",
    "compile_frame",
    "COMPILED_PING",
    "COMPILED_PONG",
    "COMPILED_CLOSE",
    "COMPILED_CLOSE_NORMAL_CLOSURE",
    "COMPILED_CLOSE_GOING_AWAY",
    "COMPILED_CLOSE_PROTOCOL_ERROR",
    "COMPILED_CLOSE_UNSUPPORTED_DATA",
    "COMPILED_CLOSE_INVALID_FRAME_PAYLOAD_DATA",
    "COMPILED_CLOSE_POLICY_VIOLATION",
    "COMPILED_CLOSE_MESSAGE_TOO_BIG",
    "COMPILED_CLOSE_MANDATORY_EXTENSION",
    "COMPILED_CLOSE_INTERNAL_ERROR",
]

Payload = bytes | bytearray | memoryview


class OpCode(enum.IntEnum):
    """Frame opcodes (RFC 6455 §5.2). Received headers carry plain ints, reserved included."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """True for Close, Ping and Pong."""
        return is_control(self)

    @property
    def is_data(self) -> bool:
        """True for Continuation, Text and Binary."""
        return is_data(self)

    @property
    def is_reserved(self) -> bool:
        """Always False for a member; see :func:`is_reserved` for raw ints."""
        return is_reserved(self)


CONTINUATION = OpCode.CONTINUATION
TEXT = OpCode.TEXT
BINARY = OpCode.BINARY
CLOSE = OpCode.CLOSE
PING = OpCode.PING
PONG = OpCode.PONG
DATA_OPCODES = frozenset({CONTINUATION, TEXT, BINARY})
CONTROL_OPCODES = frozenset({CLOSE, PING, PONG})


def is_control(opcode: int) -> bool:
    """True if ``opcode`` is a control opcode (its high bit set: 0x8–0xF, reserved included)."""
    return opcode & 0x8 != 0


def is_data(opcode: int) -> bool:
    """True if ``opcode`` is a data opcode (0x0–0x7, reserved included)."""
    return opcode & 0x8 == 0


def is_reserved(opcode: int) -> bool:
    """True if ``opcode`` is reserved for future use (0x3–0x7, 0xB–0xF)."""
    return 0x3 <= opcode <= 0x7 or 0xB <= opcode <= 0xF


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 §7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    #: Reserved; "the specific meaning might be defined in the future".
    RESERVED = 1004
    #: Never on the wire: stands for "the Close frame had no status code".
    NO_STATUS_RCVD = 1005
    #: Never on the wire: stands for "the connection closed without a Close frame".
    ABNORMAL_CLOSURE = 1006
    INVALID_FRAME_PAYLOAD_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    #: Never on the wire: stands for "the TLS handshake failed".
    TLS_HANDSHAKE = 1015

    @property
    def is_protocol_reserved(self) -> bool:
        """True for the codes that must never be sent (1004, 1005, 1006, 1015)."""
        return is_protocol_reserved(self)


# RFC 6455 §7.4.2: the ranges of close codes.
CLOSE_RANGE_NOT_USED = range(1000)
CLOSE_RANGE_PROTOCOL = range(1000, 3000)
CLOSE_RANGE_APPLICATION = range(3000, 4000)
CLOSE_RANGE_PRIVATE = range(4000, 5000)

_PROTOCOL_RESERVED = frozenset({1004, 1005, 1006, 1015})
_DEFINED = frozenset(int(c) for c in CloseCode)


def is_protocol_defined(code: int) -> bool:
    """True if ``code`` is one that RFC 6455 or the IANA registry defines (1000–1015)."""
    return code in _DEFINED


def is_protocol_reserved(code: int) -> bool:
    """True if ``code`` is defined but must never appear on the wire (1004–1006, 1015)."""
    return code in _PROTOCOL_RESERVED


def is_sendable_close_code(code: int) -> bool:
    """True if ``code`` may be sent in a Close frame, by this side or the peer.

    RFC 6455 §7.4: defined codes other than 1004–1006 and 1015, and 3000–4999.
    """
    return (code in _DEFINED and code not in _PROTOCOL_RESERVED) or 3000 <= code <= 4999


class State(enum.IntFlag):
    """Which side an endpoint is, and what it has negotiated or has in progress."""

    SERVER_SIDE = 1
    CLIENT_SIDE = 2
    #: An extension was negotiated, so RSV bits may be set.
    EXTENDED = 4
    #: A fragmented message is in progress.
    FRAGMENTED = 8

    @property
    def server_side(self) -> bool:
        """True if SERVER_SIDE is set."""
        return bool(self & State.SERVER_SIDE)

    @property
    def client_side(self) -> bool:
        """True if CLIENT_SIDE is set."""
        return bool(self & State.CLIENT_SIDE)

    @property
    def extended(self) -> bool:
        """True if EXTENDED is set."""
        return bool(self & State.EXTENDED)

    @property
    def fragmented(self) -> bool:
        """True if FRAGMENTED is set."""
        return bool(self & State.FRAGMENTED)


def new_frame(opcode: int, fin: bool, payload: Payload = b"") -> Frame:
    """A frame with ``payload`` (kept, not copied) and an unmasked header."""
    return Frame(Header(fin=fin, opcode=opcode, length=len(payload)), payload)


def _data_payload(payload: Payload | str) -> Payload:
    return payload.encode() if isinstance(payload, str) else payload


def _control_payload(payload: Payload | str) -> Payload:
    data = _data_payload(payload)
    if len(data) > MAX_CONTROL_PAYLOAD:
        raise LocalProtocolError(f"control frame payload is {len(data)} bytes, over 125")
    return data


def new_text_frame(payload: Payload | str) -> Frame:
    """A final text frame; a ``str`` is encoded as UTF-8, bytes are kept as they are."""
    return new_frame(TEXT, True, _data_payload(payload))


def new_binary_frame(payload: Payload) -> Frame:
    """A final binary frame with ``payload``."""
    return new_frame(BINARY, True, payload)


def new_ping_frame(payload: Payload | str = b"") -> Frame:
    """A ping frame; :class:`LocalProtocolError` if ``payload`` is over 125 bytes."""
    return new_frame(PING, True, _control_payload(payload))


def new_pong_frame(payload: Payload | str = b"") -> Frame:
    """A pong frame; :class:`LocalProtocolError` if ``payload`` is over 125 bytes."""
    return new_frame(PONG, True, _control_payload(payload))


def new_close_frame(payload: Payload = b"") -> Frame:
    """A close frame with a body from :func:`close_frame_body` (or empty)."""
    return new_frame(CLOSE, True, _control_payload(payload))


def close_frame_body(code: int, reason: str = "") -> bytes:
    """A Close frame body: the 2-byte code, then ``reason`` as UTF-8.

    The reason is cut to fit the 125-byte control payload, on a character boundary
    so the body stays valid UTF-8.
    """
    if not 0 <= code <= 0xFFFF:
        raise LocalProtocolError(f"close code {code} does not fit in two bytes")
    encoded = reason.encode()
    limit = MAX_CONTROL_PAYLOAD - 2
    if len(encoded) > limit:
        cut = limit
        # Step back over continuation bytes (10xxxxxx) to the start of a character.
        while cut > 0 and encoded[cut] & 0xC0 == 0x80:
            cut -= 1
        encoded = encoded[:cut]
    return code.to_bytes(2, "big") + encoded


def parse_close_frame_data(payload: Payload) -> tuple[int, str]:
    """The code and reason of a Close frame body; (1005, "") for an empty body.

    RFC 6455 §5.5.1: a body, if present, starts with a 2-byte code, then a UTF-8
    reason. A 1-byte body raises :class:`ProtocolError`; a reason that is not UTF-8
    raises :class:`InvalidUTF8Error`. The code itself is checked by
    :func:`check_close_frame_data`.
    """
    if len(payload) == 0:
        return CloseCode.NO_STATUS_RCVD, ""
    if len(payload) == 1:
        raise ProtocolError("close frame body of 1 byte")
    code = (payload[0] << 8) | payload[1]
    reason = payload[2:]
    if not is_valid_utf8(reason):
        raise InvalidUTF8Error("close reason is not valid UTF-8")
    return code, bytes(reason).decode()


def check_close_frame_data(code: int, reason: str = "") -> None:
    """Raise :class:`ProtocolError` if a received Close frame's code may not be sent.

    RFC 6455 §7.4.1 and §7.4.2: 0–999 are not used, 1004–1006 and 1015 are never sent,
    undefined codes below 3000 are reserved, 5000 and above are not valid. Call it only
    for a non-empty body: the 1005 that :func:`parse_close_frame_data` returns for an
    empty one fails here, as 1005 on the wire must.
    """
    if not is_sendable_close_code(code):
        raise ProtocolError(f"invalid close code {code}")


def _writable(payload: Payload) -> bytearray | memoryview:
    if isinstance(payload, bytearray):
        return payload
    if isinstance(payload, memoryview) and not payload.readonly:
        return payload
    return bytearray(payload)


def mask_frame(frame: Frame, mask: bytes | None = None) -> Frame:
    """A masked copy of ``frame`` (``mask`` or a fresh one); ``frame`` is not changed."""
    mask = mask or new_mask()
    payload = bytearray(frame.payload)
    cipher(payload, mask)
    return Frame(frame.header.replace(masked=True, mask=mask), payload)


def mask_frame_in_place(frame: Frame, mask: bytes | None = None) -> Frame:
    """Mask ``frame``'s payload in place and mark its header masked; returns ``frame``.

    A read-only payload (``bytes``) is replaced by a masked ``bytearray`` copy.
    """
    mask = mask or new_mask()
    frame.payload = _writable(frame.payload)
    cipher(frame.payload, mask)
    frame.header.masked = True
    frame.header.mask = mask
    return frame


def unmask_frame(frame: Frame) -> Frame:
    """An unmasked copy of ``frame``; ``frame`` is not changed."""
    if not frame.header.masked or frame.header.mask is None:
        return Frame(frame.header.replace(), frame.payload)
    payload = bytearray(frame.payload)
    cipher(payload, frame.header.mask)
    return Frame(frame.header.replace(masked=False, mask=None), payload)


def unmask_frame_in_place(frame: Frame) -> Frame:
    """Unmask ``frame``'s payload in place and clear its header's mask; returns ``frame``."""
    header = frame.header
    if header.masked and header.mask is not None:
        frame.payload = _writable(frame.payload)
        cipher(frame.payload, header.mask)
        header.masked = False
        header.mask = None
    return frame


def compile_frame(frame: Frame) -> bytes:
    """The wire bytes of ``frame``: its header, then its payload as it is.

    The header's length is taken from the payload, so they cannot disagree.
    """
    header = frame.header
    if header.length != len(frame.payload):
        header = header.replace(length=len(frame.payload))
    return encode_header(header) + bytes(frame.payload)


def _compiled_close(code: CloseCode) -> bytes:
    return compile_frame(new_close_frame(close_frame_body(code)))


#: Pre-encoded unmasked frames, for a server to send without building them.
COMPILED_PING = compile_frame(new_ping_frame())
COMPILED_PONG = compile_frame(new_pong_frame())
COMPILED_CLOSE = compile_frame(new_close_frame())
COMPILED_CLOSE_NORMAL_CLOSURE = _compiled_close(CloseCode.NORMAL_CLOSURE)
COMPILED_CLOSE_GOING_AWAY = _compiled_close(CloseCode.GOING_AWAY)
COMPILED_CLOSE_PROTOCOL_ERROR = _compiled_close(CloseCode.PROTOCOL_ERROR)
COMPILED_CLOSE_UNSUPPORTED_DATA = _compiled_close(CloseCode.UNSUPPORTED_DATA)
COMPILED_CLOSE_INVALID_FRAME_PAYLOAD_DATA = _compiled_close(CloseCode.INVALID_FRAME_PAYLOAD_DATA)
COMPILED_CLOSE_POLICY_VIOLATION = _compiled_close(CloseCode.POLICY_VIOLATION)
COMPILED_CLOSE_MESSAGE_TOO_BIG = _compiled_close(CloseCode.MESSAGE_TOO_BIG)
COMPILED_CLOSE_MANDATORY_EXTENSION = _compiled_close(CloseCode.MANDATORY_EXTENSION)
COMPILED_CLOSE_INTERNAL_ERROR = _compiled_close(CloseCode.INTERNAL_ERROR)
