"""wsio._engine.handshake: the opening handshake with no sockets, against websockets' sans-I/O.

The peers are websockets' own sans-I/O ClientProtocol and ServerProtocol: their request
goes into a ServerHandshake in every split, our response comes back into theirs, and the
other way round. Nothing here opens a socket or reads a clock.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.http11 import Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from wsio import (
    IncompleteHandshakeError,
    InvalidStatusError,
    LocalProtocolError,
    MalformedResponseError,
    Option,
    UnexpectedExtensionError,
)
from wsio._engine.handshake import (
    ACCEPTED,
    FAILED,
    NEED_DATA,
    REJECTED,
    ClientHandshake,
    Handshake,
    ServerHandshake,
    ServerRules,
    check_accepted_extensions,
)

PIPELINED = b"\x81\x85abcd" + b"12345"


def websockets_request(**kwargs: object) -> tuple[ClientProtocol, bytes]:
    client = ClientProtocol(parse_uri("ws://localhost/chat"), **kwargs)  # type: ignore[arg-type]
    client.send_request(client.connect())
    return client, b"".join(client.data_to_send())


def feed_in_pieces(handshake: ServerHandshake | ClientHandshake, data: bytes, size: int) -> int:
    """Feed ``data`` in ``size``-byte pieces until decided; return the head's byte count."""
    taken = 0
    for start in range(0, len(data), size):
        if handshake.state != NEED_DATA:
            break
        taken += handshake.receive_data(data[start : start + size])
    return taken


# -- the server side ---------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=300))
def test_websockets_request_in_any_split_is_accepted(size: int) -> None:
    client, request = websockets_request(subprotocols=[Subprotocol("chat")])
    server = ServerHandshake(ServerRules(protocol=["chat"]))
    taken = feed_in_pieces(server, request + PIPELINED, size)
    assert server.state == ACCEPTED
    assert taken == len(request)
    assert server.handshake == Handshake("chat", [])
    # The bytes after the head were never parsed; those fed are kept for the caller.
    fed = -(-len(request) // size) * size
    assert bytes(server.trailing()) == (request + PIPELINED)[len(request) : fed]
    response = server.data_to_send()
    assert server.data_to_send() == b""  # given once
    client.receive_data(response)
    assert client.state is OPEN
    assert client.subprotocol == "chat"


def test_get_buffer_and_buffer_updated_read_in_place() -> None:
    _, request = websockets_request()
    server = ServerHandshake(ServerRules())
    data = request + PIPELINED
    while server.state == NEED_DATA:
        buffer = server.get_buffer(7)
        assert len(buffer) == 7
        chunk, data = data[:7], data[7:]
        buffer[: len(chunk)] = chunk
        server.buffer_updated(len(chunk))
    assert server.state == ACCEPTED
    assert bytes(server.request_head()) == request


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\n  folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX-A: 1\r\n" * 1 + b"X-A: 1\r\n" * 200 + b"\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    ],
)
def test_refusals_come_with_their_answer(request_bytes: bytes, status: int) -> None:
    server = ServerHandshake(ServerRules())
    server.receive_data(request_bytes)
    assert server.state == REJECTED
    assert server.handshake is None
    assert server.rejection is not None and server.rejection.status == status
    answer = server.data_to_send()
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    with pytest.raises(LocalProtocolError):
        server.receive_data(b"more")


def test_websockets_client_sees_the_403_for_a_foreign_origin() -> None:
    client, request = websockets_request(origin="https://evil.example")
    server = ServerHandshake(ServerRules(origins=["https://app.example"]))
    server.receive_data(request)
    assert server.state == REJECTED
    assert server.rejection is not None and server.rejection.status == 403
    client.receive_data(server.data_to_send())
    response = client.events_received()[0]
    assert isinstance(response, Response)
    assert response.status_code == 403


def test_empty_reads_change_nothing() -> None:
    _, request = websockets_request()
    server = ServerHandshake(ServerRules())
    assert server.receive_data(b"") == 0
    assert server.receive_data(request[:10]) == 10
    assert server.buffer_updated(0) == 0
    assert server.state == NEED_DATA
    assert server.data_to_send() == b""
    assert server.receive_data(request[10:] + b"tail") == len(request) - 10
    assert server.state == ACCEPTED
    assert bytes(server.trailing()) == b"tail"


def test_eof_before_the_head_is_failed() -> None:
    server = ServerHandshake(ServerRules())
    server.receive_data(b"GET / HTTP/1.1\r\n")
    server.receive_eof()
    assert server.state == FAILED
    assert isinstance(server.error, IncompleteHandshakeError)
    assert server.data_to_send() == b""


def test_a_hook_error_is_500_with_the_cause_chained() -> None:
    def broken(uri: object) -> None:
        raise KeyError("secret detail")

    _, request = websockets_request()
    server = ServerHandshake(ServerRules(on_request=broken))
    server.receive_data(request)
    assert server.state == REJECTED
    assert server.rejection is not None and server.rejection.status == 500
    assert isinstance(server.rejection.__cause__, KeyError)
    assert b"secret detail" not in server.data_to_send()


def test_a_pooled_parser_is_reset() -> None:
    rules = ServerRules()
    parser = rules.new_parser()
    parser.feed(b"GET /old HTTP/1.1\r\nX-Left: over\r\n")
    _, request = websockets_request()
    server = ServerHandshake(rules, parser)
    server.receive_data(request)
    assert server.state == ACCEPTED


# -- the client side ---------------------------------------------------------------------


def client_handshake(**kwargs: object) -> ClientHandshake:
    return ClientHandshake(resource="/chat", host="localhost", **kwargs)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=300))
def test_websockets_server_accepts_our_request_in_any_split(size: int) -> None:
    client = client_handshake(
        subprotocols=["chat"],
        extensions=[Option("permessage-deflate", (("client_max_window_bits", None),))],
    )
    server = ServerProtocol(
        subprotocols=[Subprotocol("chat")], extensions=[ServerPerMessageDeflateFactory()]
    )
    server.receive_data(client.data_to_send())
    assert client.data_to_send() == b""
    request = server.events_received()[0]
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    response = b"".join(server.data_to_send())
    taken = feed_in_pieces(client, response + b"\x81\x02hi", size)
    assert client.state == ACCEPTED, client.error
    assert taken == len(response)
    assert client.handshake is not None
    assert client.handshake.subprotocol == "chat"
    assert [option.name for option in client.handshake.extensions] == ["permessage-deflate"]


def test_a_non_101_is_failed_with_its_status_and_body() -> None:
    client = client_handshake()
    client.receive_data(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
    assert client.state == FAILED
    assert isinstance(client.error, InvalidStatusError)
    assert (client.error.status, client.error.body) == (403, b"nope")


def test_a_malformed_response_is_failed() -> None:
    client = client_handshake()
    client.receive_data(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    assert client.state == FAILED
    assert isinstance(client.error, MalformedResponseError)


def test_eof_mid_response_is_failed() -> None:
    client = client_handshake()
    client.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n")
    client.receive_eof()
    assert isinstance(client.error, IncompleteHandshakeError)


def test_websockets_deflate_answer_passes_the_default_policy() -> None:
    # websockets' own client and server agree on this answer; our policy must too.
    offer = ClientPerMessageDeflateFactory(client_max_window_bits=True)
    params = offer.get_request_params()
    offered = [Option("permessage-deflate", tuple(params))]
    answer = ServerPerMessageDeflateFactory(server_max_window_bits=10)
    response_params, _ = answer.process_request_params(params, [])
    check_accepted_extensions(offered, [Option("permessage-deflate", tuple(response_params))])


@pytest.mark.parametrize(
    "answer",
    [
        [Option("x-unknown")],
        [Option("permessage-deflate"), Option("permessage-deflate")],
        [Option("permessage-deflate", (("client_max_window_bits", "10"),))],
        [Option("permessage-deflate", (("x-param", None),))],
        [Option("permessage-deflate", (("server_max_window_bits", "10"),) * 2)],
        [Option("x-ext", (("b", "1"),))],
    ],
)
def test_default_policy_refuses_answers_no_offer_allows(answer: list[Option]) -> None:
    offered = [Option("permessage-deflate"), Option("x-ext", (("a", "1"),))]
    with pytest.raises(UnexpectedExtensionError):
        check_accepted_extensions(offered, answer)
