"""wsutil.Keepalive: a silent peer is pinged, then given up on; a live one is left alone."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import wsio
from wsio import wsutil

Pair = tuple[socket.socket, socket.socket]


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    with a, b:
        a.settimeout(0.05)  # how often a waiting read wakes up to check the silence
        b.settimeout(10.0)
        yield a, b


def pinger(sock: socket.socket, pings: list[int]) -> wsutil.Keepalive:
    def ping() -> None:
        pings.append(1)
        wsutil.write_message(sock, wsio.State.SERVER_SIDE, wsio.OpCode.PING, b"")

    return wsutil.Keepalive(sock, ping, interval=0.1, timeout=0.2)


def test_a_silent_peer_gets_one_ping_then_a_timeout(pair: Pair) -> None:
    a, b = pair
    pings: list[int] = []
    source = pinger(a, pings)
    with pytest.raises(wsio.KeepaliveTimeoutError):
        source.recv_into(bytearray(10))
    assert pings == [1]
    assert wsio.read_frame(b).header.opcode == wsio.OpCode.PING
    assert isinstance(wsio.KeepaliveTimeoutError("x"), TimeoutError)


def test_an_answer_to_the_ping_is_read(pair: Pair) -> None:
    a, b = pair
    pings: list[int] = []
    source = pinger(a, pings)

    def answer() -> None:
        wsio.read_frame(b)  # the ping
        b.sendall(b"pong")

    thread = threading.Thread(target=answer)
    thread.start()
    buffer = bytearray(10)
    assert source.recv_into(buffer) == 4 and buffer[:4] == b"pong"
    thread.join(10.0)
    assert pings == [1]


def test_a_reader_reads_through_it(pair: Pair) -> None:
    a, b = pair
    pings: list[int] = []
    reader = wsutil.Reader(pinger(a, pings), wsio.State.CLIENT_SIDE)
    b.sendall(wsio.compile_frame(wsio.new_text_frame(b"in time")))
    reader.next_frame()
    assert reader.readall() == b"in time"
    assert pings == []


def test_a_socket_without_a_timeout_is_refused() -> None:
    a, b = socket.socketpair()
    with a, b, pytest.raises(ValueError, match="timeout"):
        wsutil.Keepalive(a, lambda: None, interval=1.0, timeout=1.0)
