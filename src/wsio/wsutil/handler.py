"""Answers to control frames: pong for ping, the closing handshake for close."""

from __future__ import annotations

from collections.abc import Callable

from wsio._engine.framing import Header
from wsio.exceptions import ConnectionClosed, ProtocolError
from wsio.frameio import Sink
from wsio.frames import (
    CloseCode,
    OpCode,
    State,
    check_close_frame_data,
    close_frame_body,
    parse_close_frame_data,
)
from wsio.wsutil.writer import Writer

__all__ = ["ControlHandler", "control_frame_handler", "write_close"]

_PING = int(OpCode.PING)
_PONG = int(OpCode.PONG)
_CLOSE = int(OpCode.CLOSE)


def write_close(dest: Sink, state: State | int, code: int | None, reason: str = "") -> None:
    """Send a Close frame with ``code`` and ``reason`` (no body if ``code`` is None).

    One write: whole against other threads' frames on a :class:`wsio.LockedSink`.
    """
    writer = Writer(dest, state, OpCode.CLOSE, buffer_size=125, fragmenting=False)
    writer.reset_op(OpCode.CLOSE)  # a begun message: flush() sends it even with no body
    if code is not None:
        writer.write(close_frame_body(code, reason))
    writer.flush()


class ControlHandler:
    """Answers the control frames a reader meets; it never closes the connection itself.

    ``handle(header, payload)`` takes a control frame with its unmasked payload. A
    ping is answered with a pong carrying the same payload; a pong goes to
    ``on_pong``; a close is answered with a close echoing its code and reason (RFC
    6455 §5.5.1) and then raises :class:`ClosedError` (the code is 1005 for a close
    with no body). A close with an invalid code or reason is answered with 1002 (or
    1007 for a reason that is not UTF-8) and raises :class:`ProtocolError`; the reply
    carries no detail of the error.

    Its frames are whole against other threads' writes on a :class:`wsio.LockedSink`;
    the handler itself (``close_sent``) is for one thread, or calls under one lock.
    """

    def __init__(
        self,
        dest: Sink,
        state: State | int,
        *,
        on_ping: Callable[[bytes], None] | None = None,
        on_pong: Callable[[bytes], None] | None = None,
        on_close: Callable[[int, str], None] | None = None,
    ) -> None:
        self.dest = dest
        self.state = State(state)
        self.on_ping = on_ping
        self.on_pong = on_pong
        self.on_close = on_close
        #: True once this handler has sent a Close frame.
        self.close_sent = False
        self._sent: tuple[int | None, str] = (None, "")
        self._writer = Writer(dest, self.state, OpCode.PONG, buffer_size=125, fragmenting=False)

    def handle(self, header: Header, payload: bytes | bytearray | memoryview) -> None:
        """Answer one control frame (see the class docstring); other frames are an error."""
        opcode = header.opcode
        if opcode == _PING:
            self.handle_ping(payload)
        elif opcode == _PONG:
            self.handle_pong(payload)
        elif opcode == _CLOSE:
            self.handle_close(payload)
        else:
            raise ValueError(f"opcode {opcode:#x} is not a control frame")

    def handle_ping(self, payload: bytes | bytearray | memoryview) -> None:
        """RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
        frame in response ... with identical Application data"."""
        if self.on_ping is not None:
            self.on_ping(bytes(payload))
        writer = self._writer
        writer.reset_op(OpCode.PONG)
        writer.write(payload)
        writer.flush()  # reset_op began the message: an empty ping gets an empty pong

    def handle_pong(self, payload: bytes | bytearray | memoryview) -> None:
        """A pong needs no answer; ``on_pong`` sees it."""
        if self.on_pong is not None:
            self.on_pong(bytes(payload))

    def send_close(self, code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the closing handshake: send a Close frame (once); the peer's answer, read
        later, is then not answered again."""
        if self.close_sent:
            return
        self.close_sent = True
        self._sent = (code, reason)
        write_close(self.dest, self.state, code, reason)

    def handle_close(self, payload: bytes | bytearray | memoryview) -> None:
        """Answer a close frame and raise :class:`ClosedError` (or ProtocolError if bad).

        RFC 6455 §5.5.1: "If an endpoint receives a Close frame and did not previously
        send a Close frame, the endpoint MUST send a Close frame in response." If this
        handler already sent one (:meth:`send_close`), nothing more is sent.
        """
        try:
            code, reason = parse_close_frame_data(payload)
            if payload:  # an empty body stands for 1005; 1005 itself may not be sent
                check_close_frame_data(code, reason)
        except ProtocolError as error:
            if not self.close_sent:
                self.close_sent = True
                write_close(self.dest, self.state, error.close_code)
            raise
        if self.on_close is not None:
            self.on_close(code, reason)
        if self.close_sent:
            sent_code, sent_reason = self._sent
            raise ConnectionClosed.of(code, reason, sent_code=sent_code, sent_reason=sent_reason)
        # RFC 6455 §5.5.1: "the endpoint typically echos the status code it received".
        self.close_sent = True
        echo = None if code == CloseCode.NO_STATUS_RCVD else code
        write_close(self.dest, self.state, echo, reason)
        raise ConnectionClosed.of(code, reason, sent_code=echo, sent_reason=reason)


def control_frame_handler(
    dest: Sink, state: State | int, **hooks: Callable[..., None] | None
) -> Callable[[Header, memoryview], None]:
    """A ``Reader(on_intermediate=...)`` hook answering control frames with a ControlHandler."""
    return ControlHandler(dest, state, **hooks).handle
