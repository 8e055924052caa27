"""wsio.Conn: read-ahead bytes first, then the socket; socket semantics throughout."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from types import BuiltinMethodType
from typing import TYPE_CHECKING, cast

import pytest
import trustme

from wsio.conn import Conn

if TYPE_CHECKING:
    from typing_extensions import Buffer


def bound_to(method: object) -> object:
    """The object a bound method was taken from (a socket's are built-in methods)."""
    return cast(BuiltinMethodType, method).__self__


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    yield a, b
    a.close()
    b.close()


def test_read_ahead_comes_first_and_alone(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    conn = Conn(a, b"ahead")
    b.sendall(b"socket")
    buf = bytearray(64)
    # The read-ahead is returned on its own, not merged with what the socket has.
    assert conn.recv_into(buf) == 5
    assert buf[:5] == b"ahead"
    assert conn.pending == 0
    n = conn.recv_into(buf)
    assert buf[:n] == b"socket"


def test_read_ahead_in_pieces(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    conn = Conn(a, bytearray(b"0123456789"))
    buf = bytearray(4)
    assert conn.recv_into(buf) == 4
    assert buf == b"0123"
    assert conn.pending == 6
    assert conn.recv_into(buf, 2) == 2
    assert buf[:2] == b"45"
    assert conn.recv(3) == b"678"
    assert conn.recv(100) == b"9"
    assert conn.pending == 0
    b.sendall(b"x")
    assert conn.recv(10) == b"x"


def test_recv_into_a_memoryview_of_another_format(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    conn = Conn(a, b"\x01\x02\x03\x04")
    words = memoryview(bytearray(8)).cast("I")
    assert conn.recv_into(words) == 4
    assert bytes(words.cast("B")[:4]) == b"\x01\x02\x03\x04"


def test_nbytes_larger_than_buffer_is_refused_like_a_socket(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    conn = Conn(a, b"abc")
    with pytest.raises(ValueError):
        conn.recv_into(bytearray(2), 3)
    with pytest.raises(ValueError):
        a.recv_into(bytearray(2), 3)
    with pytest.raises(ValueError):
        conn.recv(-1)
    assert conn.pending == 3


def test_zero_length_reads_take_nothing(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    conn = Conn(a, b"abc")
    assert conn.recv_into(bytearray(0)) == 0
    assert conn.recv(0) == b""
    assert conn.pending == 3


def test_peek_leaves_read_ahead_unread(pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    conn = Conn(a, b"abc")
    assert conn.recv(2, socket.MSG_PEEK) == b"ab"
    buf = bytearray(3)
    assert conn.recv_into(buf, 0, socket.MSG_PEEK) == 3
    assert conn.pending == 3
    assert conn.recv(3) == b"abc"


def test_drained_conn_calls_the_socket_methods_directly(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    conn = Conn(a, b"ab")
    assert conn.recv_into.__func__ is Conn.recv_into  # type: ignore[attr-defined]
    conn.recv(2)
    # Once drained, the bound methods are the socket's own: no Python frame in between.
    assert bound_to(conn.recv_into) is a
    assert bound_to(conn.recv) is a
    assert bound_to(conn.sendall) is a
    assert bound_to(conn.sendmsg) is a


def test_empty_read_ahead_binds_the_socket_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    conn = Conn(a)
    assert conn.pending == 0
    assert bound_to(conn.recv_into) is a
    b.sendall(b"hi")
    assert conn.recv(2) == b"hi"


def test_read_ahead_view_is_released_when_drained(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    storage = bytearray(b"HEAD\r\n\r\nframe")
    conn = Conn(a, memoryview(storage)[8:])
    with pytest.raises(BufferError):
        storage.extend(b"!")  # exported while the read-ahead is kept
    assert conn.recv(16) == b"frame"
    storage.extend(b"!")  # no export left


def test_take_read_ahead(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    conn = Conn(a, b"abcdef")
    conn.recv(2)
    rest = conn.take_read_ahead()
    assert bytes(rest) == b"cdef"
    assert conn.pending == 0
    assert bytes(conn.take_read_ahead()) == b""
    b.sendall(b"z")
    assert conn.recv(1) == b"z"


def test_end_of_stream_after_read_ahead(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    conn = Conn(a, b"last")
    b.close()
    assert conn.recv(10) == b"last"
    assert conn.recv(10) == b""
    assert conn.recv_into(bytearray(4)) == 0


def test_send_side_and_sendmsg(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    conn = Conn(a, b"x")
    conn.sendall(b"one ")
    assert conn.send(b"two ") == 4
    assert conn.sendmsg([b"thr", memoryview(b"ee")]) == 5
    expected = b"one two three"
    got = b""
    while len(got) < len(expected):
        got += b.recv(64)
    assert got == expected


def test_socket_methods(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    with Conn(a, b"x") as conn:
        assert conn.fileno() == a.fileno()
        conn.settimeout(1.5)
        assert conn.gettimeout() == 1.5
        assert a.gettimeout() == 1.5
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sndbuf = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert isinstance(sndbuf, int) and sndbuf > 0
        assert isinstance(conn.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8), bytes)
        assert conn.getpeername() == a.getpeername()
        assert conn.getsockname() == a.getsockname()
        assert "pending=1" in repr(conn)
        conn.shutdown(socket.SHUT_WR)
        assert b.recv(1) == b""
    assert a.fileno() == -1
    assert conn.pending == 0


def test_tcp_socket(pair: tuple[socket.socket, socket.socket]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname(), timeout=5)
        peer, _ = server.accept()
        with Conn(client) as conn, peer:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            assert conn.getpeername() == server.getsockname()


class _Counting:
    """A wrapper with socket methods but no socket options, like a wrap_socket hook returns."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = 0

    def recv_into(self, buffer: Buffer, nbytes: int = 0, flags: int = 0, /) -> int:
        n = self.sock.recv_into(buffer, nbytes, flags)
        self.received += n
        return n

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        data = self.sock.recv(bufsize, flags)
        self.received += len(data)
        return data

    def send(self, data: Buffer, flags: int = 0, /) -> int:
        return self.sock.send(data, flags)

    def sendall(self, data: Buffer, flags: int = 0, /) -> None:
        self.sock.sendall(data, flags)

    def close(self) -> None:
        self.sock.close()

    def shutdown(self, how: int, /) -> None:
        self.sock.shutdown(how)

    def fileno(self) -> int:
        return self.sock.fileno()

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def getpeername(self) -> object:
        return self.sock.getpeername()

    def getsockname(self) -> object:
        return self.sock.getsockname()


def test_any_socket_like_object(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    wrapped = _Counting(a)
    conn = Conn(wrapped, b"ab")
    b.sendall(b"cd")
    assert conn.recv(2) == b"ab"
    assert conn.recv(2) == b"cd"
    assert wrapped.received == 2
    # No sendmsg on the wrapper: emulated with one send.
    assert conn.sendmsg([b"e", b"f"]) == 2
    assert b.recv(2) == b"ef"
    with pytest.raises(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)
    with pytest.raises(OSError):
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    with pytest.raises(ValueError):
        conn.sendmsg([b"x"], [], 0)


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def test_tls_socket_reads_and_emulated_sendmsg(
    pair: tuple[socket.socket, socket.socket], tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_ctx, client_ctx = tls
    a, b = pair
    received: list[bytes] = []

    def serve() -> None:
        with server_ctx.wrap_socket(b, server_side=True) as s:
            data = b""
            while len(data) < 6:
                data += s.recv(64)
            received.append(data)
            s.sendall(b"pong")

    thread = threading.Thread(target=serve)
    thread.start()
    tls_sock = client_ctx.wrap_socket(a, server_hostname="localhost")
    conn = Conn(tls_sock, b"early")
    assert "sendmsg" not in vars(conn)  # SSLSocket.sendmsg raises NotImplementedError
    assert conn.sendmsg([b"pi", b"ng", memoryview(b"!!")]) == 6
    assert conn.recv(16) == b"early"
    buf = bytearray(16)
    n = conn.recv_into(buf)
    while n < 4:
        n += conn.recv_into(memoryview(buf)[n:])
    assert buf[:4] == b"pong"
    thread.join()
    assert received == [b"ping!!"]
    conn.close()
