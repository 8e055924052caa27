"""The opening handshake under attack (issue 8 items 5, 7, 9 and the Dialer part of 10).

Each test reproduces the attack against the real call or a real server socket on
loopback and asserts what a user relies on: the deadline held, the answer's status and
bytes, memory and CPU bounded by the limits. Times are generous bounds on hangs, never
speed assertions.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import websockets.exceptions
import websockets.sync.client
from websockets.typing import Origin

import wsio
from wsio import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    Dialer,
    HandshakeTimeoutError,
    LocalProtocolError,
    RejectConnectionError,
    UnexpectedExtensionError,
    Upgrader,
    UpgradeRequestHandler,
    accept_key,
    upgrade_http,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(*extra: str, line: str = "GET /chat HTTP/1.1") -> bytes:
    lines = [
        line,
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    data = b""
    with contextlib.suppress(OSError):
        while part := sock.recv(65536):
            data += part
    return data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@contextlib.contextmanager
def upgrade_server(upgrade: Callable[[socket.socket], object]) -> Iterator[tuple[int, list[Any]]]:
    """A TCP server on loopback running ``upgrade(conn)`` once per connection, in a thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    outcomes: list[Any] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                start = time.monotonic()
                try:
                    outcomes.append((upgrade(conn), time.monotonic() - start))
                except Exception as exc:
                    outcomes.append((exc, time.monotonic() - start))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], outcomes
    finally:
        stop(listener)
        thread.join(timeout=30)


def stop(listener: socket.socket) -> None:
    """Wake the thread blocked in ``accept`` (closing alone does not, on Linux) and close."""
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def drip(port: int, data: bytes, every: float, until: float) -> tuple[bytes, float]:
    """Send ``data`` one byte every ``every`` seconds until the server hangs up or ``until``.

    Returns what the server sent and when it hung up (seconds after connecting).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=until) as sock:
        start = time.monotonic()
        received = b""
        for byte in data:
            if time.monotonic() - start > until:
                break
            try:
                sock.sendall(bytes([byte]))
                ready = sock.recv(65536) if _readable(sock, every) else None
            except OSError:
                break  # reset: the server closed with our bytes unread
            if ready is not None:
                received += ready
                if not ready:
                    break
        received += read_all(sock)
        return received, time.monotonic() - start


def _readable(sock: socket.socket, wait: float) -> bool:
    return bool(select.select([sock], [], [], wait)[0])


# -- item 5: one deadline for the whole handshake ------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda conn: Upgrader(timeout=2).upgrade(conn),
        lambda conn: Upgrader(timeout=2).upgrade_conn(conn),
        lambda conn: wsio.upgrade(conn, timeout=2),
        lambda conn: wsio.upgrade_conn(conn, timeout=2),
    ],
    ids=["Upgrader.upgrade", "Upgrader.upgrade_conn", "upgrade", "upgrade_conn"],
)
def test_a_byte_a_second_ends_at_the_deadline(call: Callable[[socket.socket], object]) -> None:
    with upgrade_server(call) as (port, outcomes):
        _, hung_up = drip(port, request(), every=1.0, until=30)
    error, took = outcomes[0]
    assert isinstance(error, HandshakeTimeoutError)
    # Per-read timeouts would never fire here (a byte comes every second).
    assert 1.5 <= took < 8
    assert hung_up < 12


def test_the_default_upgrade_has_a_deadline() -> None:
    assert Upgrader().timeout == DEFAULT_HANDSHAKE_TIMEOUT == 10.0
    with upgrade_server(wsio.upgrade) as (port, outcomes):
        drip(port, request(), every=1.0, until=60)
    error, took = outcomes[0]
    assert isinstance(error, HandshakeTimeoutError)
    assert DEFAULT_HANDSHAKE_TIMEOUT - 0.5 <= took < 30


def test_the_deadline_can_be_turned_off_explicitly() -> None:
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(0.5)
        client.sendall(b"GET / HTTP/1.1\r\n")
        # timeout=None leaves the socket's own timeout in charge.
        with pytest.raises(HandshakeTimeoutError):
            Upgrader(timeout=None).upgrade(server)
        assert server.gettimeout() == 0.5


def test_previous_socket_timeout_is_restored_after_success() -> None:
    server, client = socket.socketpair()
    with server, client:
        server.settimeout(123.0)
        client.sendall(request())
        Upgrader(timeout=5).upgrade(server)
        assert server.gettimeout() == 123.0


class _DripHandler(UpgradeRequestHandler):
    upgrader = Upgrader(timeout=2)

    def do_GET(self) -> None:
        with contextlib.suppress(RejectConnectionError):
            upgrade_http(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_upgrade_request_handler_holds_the_deadline_on_the_head() -> None:
    with http_server(_DripHandler) as port:
        _, hung_up = drip(port, request(), every=1.0, until=30)
    assert hung_up < 8


# -- item 7: cross-site WebSocket hijacking -----------------------------------------------

ALLOWED = "https://app.example.com"


@pytest.mark.parametrize(
    ("origin_lines", "status"),
    [
        (["Origin: https://app.example.com"], 101),
        (["Origin: HTTPS://APP.EXAMPLE.COM"], 101),
        (["Origin: https://evil.example"], 403),
        (["Origin: null"], 403),
        (["Origin: https://app.example.com.evil.net"], 403),
        (["Origin: https://evil.app.example.com"], 403),
        (["Origin: http://app.example.com"], 403),
        (["Origin: https://app.example.com:8443"], 403),
        (["Origin: https://evil.example", "Origin: https://app.example.com"], 403),
        ([], 403),
    ],
)
def test_origins_allow_list(origin_lines: list[str], status: int) -> None:
    upgrader = Upgrader(origins=[ALLOWED])
    with (
        upgrade_server(upgrader.upgrade) as (port, outcomes),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(request(*origin_lines))
        if status == 101:
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            response = head
        else:
            response = read_all(sock)
    assert status_of(response) == status
    if status == 403:
        assert response.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert b"\r\nConnection: close\r\n" in response
        body = response.partition(b"\r\n\r\n")[2]
        assert body in (b"origin not allowed", b"more than one Origin header")
    for _ in range(100):
        if outcomes:
            break
        time.sleep(0.05)
    outcome = outcomes[0][0]
    if status == 403:
        assert isinstance(outcome, RejectConnectionError) and outcome.status == 403
    else:
        assert isinstance(outcome, wsio.Handshake)


def test_none_admits_a_request_without_origin_only() -> None:
    upgrader = Upgrader(origins=[None, ALLOWED])
    assert upgrader.check("GET", _headers()).handshake == wsio.Handshake()
    assert upgrader.check("GET", [*_headers(), ("Origin", ALLOWED)]).handshake
    with pytest.raises(RejectConnectionError) as info:
        upgrader.check("GET", [*_headers(), ("Origin", "https://evil.example")])
    assert info.value.status == 403


def test_check_request_and_upgrade_take_origins() -> None:
    with pytest.raises(RejectConnectionError) as info:
        wsio.check_request("GET", [*_headers(), ("Origin", "null")], origins=[ALLOWED])
    assert info.value.status == 403
    assert wsio.check_request("GET", _headers(), origins=[None]).response.startswith(
        b"HTTP/1.1 101"
    )
    with (
        upgrade_server(lambda conn: wsio.upgrade(conn, origins=[ALLOWED])) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(request("Origin: https://evil.example"))
        assert status_of(read_all(sock)) == 403


def test_origins_must_be_a_list() -> None:
    with pytest.raises(TypeError):
        Upgrader(origins="https://app.example.com")
    with pytest.raises(LocalProtocolError):
        Upgrader(origins=["https://app.example.com\r\nX: y"])


def test_a_browser_like_client_from_another_origin_is_refused() -> None:
    upgrader = Upgrader(origins=[ALLOWED])

    def serve(conn: socket.socket) -> object:
        return upgrader.upgrade(conn)

    with upgrade_server(serve) as (port, _):
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            websockets.sync.client.connect(
                f"ws://127.0.0.1:{port}/", origin=Origin("https://evil.example"), open_timeout=10
            )
        assert info.value.response.status_code == 403
        with websockets.sync.client.connect(
            f"ws://127.0.0.1:{port}/", origin=Origin(ALLOWED), open_timeout=10
        ) as ws:
            assert ws.response is not None
            assert ws.response.status_code == 101


def _headers() -> list[tuple[str, str]]:
    return [
        ("Host", "x"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ]


# -- item 9: upgrade_http applies the Upgrader's rules -----------------------------------


class _PlainHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    outcomes: ClassVar[list[Any]] = []

    def do_GET(self) -> None:
        try:
            self.outcomes.append(upgrade_http(self, origins=[None, ALLOWED])[1])
        except RejectConnectionError as exc:
            self.outcomes.append(exc)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _WsioHandler(UpgradeRequestHandler):
    protocol_version = "HTTP/1.1"
    outcomes: ClassVar[list[Any]] = []
    upgrader = Upgrader(origins=[None, ALLOWED])

    def do_GET(self) -> None:
        try:
            self.outcomes.append(upgrade_http(self)[1])
        except RejectConnectionError as exc:
            self.outcomes.append(exc)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def ask(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        head = b""
        while b"\r\n\r\n" not in head:
            part = sock.recv(65536)
            if not part:
                break
            head += part
        return head if head.startswith(b"HTTP/1.1 101") else head + read_all(sock)


HANDLERS = pytest.mark.parametrize("handler", [_PlainHandler, _WsioHandler])

MALFORMED = {
    "obs-fold": request("X-A: 1", " folded"),
    "bare CR": request("X-A: a\rb"),
    "NUL in a value": request("X-A: a\x00b"),
    "non-ASCII name": request("X-Caf\xe9: 1"),
    "space before colon": request("X-A : 1"),
    "tab in the request line": request(line="GET\t/chat HTTP/1.1"),
}


@HANDLERS
@pytest.mark.parametrize("case", list(MALFORMED))
def test_upgrade_http_refuses_what_the_upgrader_refuses(
    handler: type[BaseHTTPRequestHandler], case: str
) -> None:
    # The Upgrader's own verdict on the same bytes, for reference.
    server, client = socket.socketpair()
    with server, client:
        client.sendall(MALFORMED[case])
        with pytest.raises(RejectConnectionError) as info:
            Upgrader().upgrade(server)
    assert info.value.status == 400
    with http_server(handler) as port:
        response = ask(port, MALFORMED[case])
    assert status_of(response) == 400, response[:200]
    assert not response.startswith(b"HTTP/1.1 101")


@HANDLERS
def test_upgrade_http_still_upgrades_a_good_request(handler: type[BaseHTTPRequestHandler]) -> None:
    with (
        http_server(handler) as port,
        websockets.sync.client.connect(f"ws://127.0.0.1:{port}/", open_timeout=10) as ws,
    ):
        assert ws.response is not None
        assert ws.response.status_code == 101


@HANDLERS
def test_upgrade_http_origins(handler: type[BaseHTTPRequestHandler]) -> None:
    with http_server(handler) as port:
        assert status_of(ask(port, request("Origin: https://evil.example"))) == 403
        assert status_of(ask(port, request(f"Origin: {ALLOWED}"))) == 101


def _huge_headers() -> bytes:
    # 5.5 MB in 90 lines of 61.2 kB: under http.client's own limits (65536 bytes a line,
    # 100 headers), so plain http.server reads and parses all of it.
    line = "X-Big: " + "a" * 61_200
    return request(*[line] * 90)


@HANDLERS
def test_megabytes_of_headers_do_not_get_through(handler: type[BaseHTTPRequestHandler]) -> None:
    data = _huge_headers()
    assert len(data) > 5_500_000
    with http_server(handler) as port:
        response = ask_while_sending(port, data)
    assert status_of(response) == 431


def test_megabytes_of_headers_cost_little_with_the_wsio_handler() -> None:
    data = _huge_headers()
    with http_server(_WsioHandler) as port:
        tracemalloc.start()
        try:
            cpu = time.process_time()
            response = ask_while_sending(port, data)
            cpu = time.process_time() - cpu
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert status_of(response) == 431
    # Generous bounds on a hang or a blow-up, not speed tests: wsio stops at
    # max_head_size (64 KiB) where plain http.server keeps and parses all 5.5 MB (several
    # copies of it, and seconds of CPU on a slow machine).
    assert peak < 2 * 2**20
    assert cpu < 5


def ask_while_sending(port: int, data: bytes) -> bytes:
    """Send ``data`` from a thread (the server may answer and close first); the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:

        def send() -> None:
            with contextlib.suppress(OSError):
                sock.sendall(data)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        response = read_all(sock)
        sender.join(timeout=30)
    return response


# -- item 10, the client side -------------------------------------------------------------


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for scheme in ("http", "https", "all", "no", "ws", "wss"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ALL_PROXY", "socks5://127.0.0.1:1080"), ("HTTPS_PROXY", "https://127.0.0.1:3128")],
)
def test_an_unsupported_proxy_in_the_environment_says_so(
    no_proxy_environment: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    no_proxy_environment.setenv(variable, value)
    with pytest.raises(LocalProtocolError, match="unsupported proxy scheme"):
        wsio.dial("ws://example.test/", timeout=5)
    with pytest.raises(LocalProtocolError, match="unsupported proxy scheme"):
        Dialer(proxy=value)


@contextlib.contextmanager
def answering_server(extra: str) -> Iterator[int]:
    """A raw loopback server answering each upgrade with a 101 plus ``extra`` lines."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    part = conn.recv(4096)
                    if not part:
                        break
                    head += part
                key = head.split(b"Sec-WebSocket-Key: ", 1)[1].split(b"\r\n", 1)[0]
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + accept_key(key).encode()
                    + b"\r\n"
                    + extra.encode()
                    + b"\r\n"
                )
                # Silent afterwards, until the client leaves.
                read_all(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop(listener)
        thread.join(timeout=30)


DEFLATE = [wsio.Option("permessage-deflate", (("client_max_window_bits", None),))]


@pytest.mark.parametrize(
    "extra",
    [
        "Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; x-unknown=1\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9;"
        " server_max_window_bits=10\r\n",
        "Sec-WebSocket-Extensions: x-other\r\n",
    ],
)
def test_dialer_fails_on_extension_answers_no_offer_allows(
    no_proxy_environment: pytest.MonkeyPatch, extra: str
) -> None:
    with answering_server(extra) as port, pytest.raises(UnexpectedExtensionError):
        wsio.dial(f"ws://127.0.0.1:{port}/", extensions=DEFLATE, timeout=10)


def test_dialer_accepts_a_well_formed_deflate_answer(
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    extra = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n"
    with answering_server(extra) as port:
        conn, handshake = wsio.dial(f"ws://127.0.0.1:{port}/", extensions=DEFLATE, timeout=10)
        with conn:
            assert [option.name for option in handshake.extensions] == ["permessage-deflate"]


def test_client_read_timeout_is_off_by_default_and_can_carry_over(
    no_proxy_environment: pytest.MonkeyPatch,
) -> None:
    with answering_server("") as port:
        conn, _ = wsio.dial(f"ws://127.0.0.1:{port}/", timeout=10)
        with conn:
            assert conn.gettimeout() is None  # documented: blocks until the peer speaks
        conn, _ = wsio.dial(f"ws://127.0.0.1:{port}/", timeout=1, keep_timeout=True)
        with conn:
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                wsio.read_frame(conn)
            assert time.monotonic() - start < 10
