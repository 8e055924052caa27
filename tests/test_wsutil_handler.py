"""ControlHandler and the one-call helpers, over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

import wsio
from wsio import OpCode, State, wsutil

SERVER = State.SERVER_SIDE


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        client.settimeout(5)
        server.settimeout(5)
        yield server, client


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    frame = wsio.Frame(wsio.Header(fin=fin, opcode=opcode, length=len(payload)), payload)
    return wsio.compile_frame(wsio.mask_frame(frame))


def read_reply(sock: socket.socket) -> tuple[int, bytes]:
    frame = wsio.read_frame(sock)
    assert not frame.header.masked
    return frame.header.opcode, bytes(frame.payload)


class TestControlHandler:
    @pytest.mark.parametrize("payload", [b"", b"hello", b"\xfe" * 125])
    def test_ping_gets_a_pong_with_the_same_payload(
        self, pair: tuple[socket.socket, socket.socket], payload: bytes
    ) -> None:
        server, client = pair
        wsutil.ControlHandler(server, SERVER).handle(wsio.Header(opcode=9), payload)
        assert read_reply(client) == (OpCode.PONG, payload)

    def test_pong_is_silent(self, pair: tuple[socket.socket, socket.socket]) -> None:
        server, client = pair
        seen: list[bytes] = []
        wsutil.ControlHandler(server, SERVER, on_pong=seen.append).handle(
            wsio.Header(opcode=10), b"x"
        )
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(1)
        assert seen == [b"x"]

    def test_empty_close(self, pair: tuple[socket.socket, socket.socket]) -> None:
        server, client = pair
        with pytest.raises(wsio.ClosedError) as info:
            wsutil.ControlHandler(server, SERVER).handle(wsio.Header(opcode=8), b"")
        assert info.value.code == 1005 and isinstance(info.value, wsio.ConnectionClosedOK)
        assert read_reply(client) == (OpCode.CLOSE, b"")

    def test_close_echoes_code_and_reason(self, pair: tuple[socket.socket, socket.socket]) -> None:
        server, client = pair
        body = wsio.close_frame_body(1001, "goodbye!")
        with pytest.raises(wsio.ClosedError) as info:
            wsutil.ControlHandler(server, SERVER).handle(wsio.Header(opcode=8), body)
        assert (info.value.code, info.value.reason) == (1001, "goodbye!")
        assert read_reply(client) == (OpCode.CLOSE, body)

    @pytest.mark.parametrize(
        ("body", "code", "error"),
        [
            (b"\x03\xe8\xff", 1007, wsio.InvalidUTF8Error),
            (b"\x03\xec", 1002, wsio.ProtocolError),  # 1004 is reserved
            (b"\x03\xed", 1002, wsio.ProtocolError),  # 1005 is never on the wire
            (b"\x00\x01", 1002, wsio.ProtocolError),
            (b"\x03", 1002, wsio.ProtocolError),
        ],
    )
    def test_invalid_close(
        self,
        pair: tuple[socket.socket, socket.socket],
        body: bytes,
        code: int,
        error: type[Exception],
    ) -> None:
        server, client = pair
        with pytest.raises(error):
            wsutil.ControlHandler(server, SERVER).handle(wsio.Header(opcode=8), body)
        assert read_reply(client) == (OpCode.CLOSE, code.to_bytes(2, "big"))  # no detail leaks

    def test_close_after_ours_is_not_answered(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        server, client = pair
        handler = wsutil.ControlHandler(server, SERVER)
        handler.send_close(1001, "going")
        handler.send_close(1000)  # once only
        assert read_reply(client) == (OpCode.CLOSE, wsio.close_frame_body(1001, "going"))
        with pytest.raises(wsio.ClosedError) as info:
            handler.handle(wsio.Header(opcode=8), wsio.close_frame_body(1001))
        assert (info.value.code, info.value.sent_code) == (1001, 1001)
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(1)  # RFC 6455 §5.5.1: no second Close


class TestHelpers:
    def test_read_client_data_answers_pings(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        server, client = pair
        client.sendall(
            client_frame(9, b"p1")
            + client_frame(1, b"hel", fin=False)
            + client_frame(9, b"p2")
            + client_frame(0, b"lo")
        )
        assert wsutil.read_client_data(server) == (b"hello", OpCode.TEXT)
        assert read_reply(client) == (OpCode.PONG, b"p1")
        assert read_reply(client) == (OpCode.PONG, b"p2")

    def test_read_client_text_skips_binary(self, pair: tuple[socket.socket, socket.socket]) -> None:
        server, client = pair
        client.sendall(client_frame(2, b"bin") + client_frame(1, b"txt"))
        assert wsutil.read_client_text(server) == b"txt"

    def test_bad_input_is_answered_with_its_close_code(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        server, client = pair
        client.sendall(client_frame(1, b"\xc0\xaf"))
        with pytest.raises(wsio.InvalidUTF8Error):
            wsutil.read_client_data(server)
        assert read_reply(client) == (OpCode.CLOSE, b"\x03\xef")  # 1007

    def test_close_is_answered_and_raised(self, pair: tuple[socket.socket, socket.socket]) -> None:
        server, client = pair
        client.sendall(client_frame(8, wsio.close_frame_body(1000, "done")))
        with pytest.raises(wsio.ClosedError):
            wsutil.read_client_data(server)
        assert read_reply(client) == (OpCode.CLOSE, wsio.close_frame_body(1000, "done"))

    def test_write_server_and_client_messages(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        server, client = pair
        wsutil.write_server_message(server, OpCode.TEXT, b"to client")
        assert wsutil.read_server_data(client) == (b"to client", OpCode.TEXT)
        data = bytearray(b"to server")
        wsutil.write_client_binary(client, data)
        assert data == b"to server"  # the client masked a copy
        assert wsutil.read_client_binary(server) == b"to server"

    def test_read_message_returns_intermediates_first(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        server, client = pair
        client.sendall(
            client_frame(1, b"a", fin=False) + client_frame(9, b"p") + client_frame(0, b"b")
        )
        messages = wsutil.read_client_message(server)
        assert messages == [wsutil.Message(9, b"p"), wsutil.Message(1, b"ab")]
        wsutil.handle_client_control_message(server, messages[0])
        assert read_reply(client) == (OpCode.PONG, b"p")
