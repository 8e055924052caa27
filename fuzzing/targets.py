"""The fuzz targets: garbage in, a result or a documented exception out, nothing else.

Each target takes arbitrary bytes. The first bytes choose how the rest is split into
reads (parsers must give the same answer however input arrives); the remainder is the
input. Run them under atheris (``python -m fuzzing.run TARGET``) for coverage-guided
fuzzing, or through Hypothesis in the test suite (``tests/test_fuzzing.py``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from wsio import State
from wsio._engine.framing import FrameParser, check_header
from wsio._engine.http import HeadError, RequestParser, ResponseParser
from wsio.exceptions import ConnectionEOFError, ProtocolError
from wsio.protocol import (
    BinaryMessage,
    Chunk,
    Close,
    PerMessageDeflate,
    ServerProtocol,
    TextMessage,
)
from wsio.wsutil import Reader

__all__ = [
    "TARGETS",
    "fuzz_frame_parser",
    "fuzz_message_reader",
    "fuzz_protocol",
    "fuzz_request_head",
    "fuzz_response_head",
]


def _chunks(data: bytes) -> Iterator[bytes]:
    # The first byte sets the read size (1..256); the rest is the input.
    if not data:
        return
    size = data[0] + 1
    body = data[1:]
    for i in range(0, len(body), size):
        yield body[i : i + size]


def fuzz_frame_parser(data: bytes) -> None:
    """The engine's FrameParser (server side): frames, or ProtocolError (incl. 1009)."""
    parser = FrameParser(max_frame_size=4096, buffer_size=64)
    state = int(State.SERVER_SIDE)
    try:
        for chunk in _chunks(data):
            parser.feed(chunk)
            while (frame := parser.next_frame()) is not None:
                check_header(frame.header, state)
                assert len(frame.payload) == frame.header.length <= 4096
    except ProtocolError as error:
        assert error.close_code in (1002, 1007, 1009)


class _Dribble(io.RawIOBase):
    """A stream returning the input in the chunks the fuzzer chose."""

    def __init__(self, data: bytes) -> None:
        self._chunks = list(_chunks(data))
        self._chunks.reverse()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._chunks:
            return 0
        chunk = self._chunks.pop()
        n = min(len(buffer), len(chunk))
        buffer[:n] = chunk[:n]
        if n < len(chunk):
            self._chunks.append(chunk[n:])
        return n


def fuzz_message_reader(data: bytes) -> None:
    """wsutil.Reader over a stream: messages, or ProtocolError / end of stream."""
    reader = Reader(_Dribble(data), State.SERVER_SIDE, max_message_size=8192, buffer_size=256)
    try:
        while True:
            header = reader.next_frame()
            payload = reader.read()
            if header.opcode == 1 and header.fin:
                payload.decode()  # a text message that got through is UTF-8
    except ConnectionEOFError:
        pass  # a clean end, or UnexpectedEOFError in the middle of something
    except ProtocolError as error:
        assert error.close_code in (1002, 1007, 1009)


def fuzz_protocol(data: bytes) -> None:
    """wsio.protocol (server side; deflate negotiated when the split byte is odd, and
    streaming mode when its bit 1 is set): events, or a failed connection with a close
    code and the Close frame queued; receive_data itself never raises."""
    mode = data[0] if data else 0
    proto = ServerProtocol(
        max_frame_size=4096,
        max_message_size=8192,
        max_fragments=16,
        streaming=bool(mode & 2),
        extensions=[PerMessageDeflate()] if mode & 1 else [],
    )
    for chunk in _chunks(data):
        proto.receive_data(chunk)
        for event in proto.events_received():
            if isinstance(event, TextMessage):
                assert isinstance(event.data, str) and len(event.data.encode()) <= 8192
            elif isinstance(event, (BinaryMessage, Chunk)):
                assert len(event.data) <= 8192
            elif isinstance(event, Close):
                assert proto.close_expected()
        proto.data_to_send()
    error = proto.error
    if error is not None:
        assert isinstance(error, ProtocolError), error  # never an internal error (1011)
        assert error.close_code in (1002, 1007, 1009)
        assert proto.close_expected()


def _fuzz_head(parser: RequestParser | ResponseParser, data: bytes) -> None:
    try:
        for chunk in _chunks(data):
            parser.feed(chunk)
            if parser.complete:
                break
    except HeadError as error:
        assert error.status in (None, 400, 414, 431, 505)
        return
    if parser.complete:
        for name, value in parser.headers():
            assert b"\r" not in value and b"\n" not in value and b":" not in name


def fuzz_request_head(data: bytes) -> None:
    """The HTTP request-head parser: a head, or a HeadError with its HTTP status."""
    _fuzz_head(RequestParser(max_line=256, max_headers=16, max_size=2048), data)


def fuzz_response_head(data: bytes) -> None:
    """The HTTP response-head parser: a head, or a HeadError."""
    _fuzz_head(ResponseParser(max_line=256, max_headers=16, max_size=2048), data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "frames": fuzz_frame_parser,
    "reader": fuzz_message_reader,
    "protocol": fuzz_protocol,
    "request": fuzz_request_head,
    "response": fuzz_response_head,
}
