"""The server side of the opening handshake: statuses, hooks, limits, pipelining, peers."""

from __future__ import annotations

import asyncio
import gc
import io
import socket
import ssl
import struct
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import aiohttp
import pytest
import trustme
import websockets.sync.client
from hypothesis import given, settings, strategies as st
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

import wsio
from wsio import (
    DebugUpgrader,
    Handshake,
    HandshakeTimeoutError,
    LocalProtocolError,
    Option,
    RejectConnectionError,
    UnexpectedEOFError,
    Upgrader,
    UpgradeRequestHandler,
    build_rejection,
    build_response,
    check_request,
    upgrade_http,
)
from wsio._engine.httphead import accept_key
from wsio._engine.mask import cipher
from wsio.conn import Conn

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

BASE_HEADERS: list[tuple[str, str]] = [
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
]


def request(
    *,
    line: bytes = b"GET /chat HTTP/1.1",
    drop: tuple[str, ...] = (),
    replace: dict[str, str] | None = None,
    add: list[tuple[str, str]] | None = None,
    raw: bytes = b"",
) -> bytes:
    """A request head: the base headers less ``drop``, with ``replace`` and ``add``."""
    replace = replace or {}
    lines = [line]
    for name, value in BASE_HEADERS:
        if name in drop:
            continue
        lines.append(f"{name}: {replace.get(name, value)}".encode("latin-1"))
    for name, value in add or []:
        lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n" + raw + b"\r\n"


class Result:
    """What one server-side upgrade did: its result or exception and the bytes sent."""

    def __init__(self) -> None:
        self.handshake: Handshake | None = None
        self.error: BaseException | None = None
        self.response = b""
        self.after = b""

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1])

    def header(self, name: str) -> str | None:
        head = self.response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(": ")
            if key.lower() == name.lower():
                return value
        return None

    @property
    def body(self) -> bytes:
        return self.response.split(b"\r\n\r\n", 1)[1]


def run(
    upgrader: Upgrader | DebugUpgrader,
    data: bytes,
    *,
    chunk: int = 0,
    delay: float = 0.0,
    after: bytes = b"",
    eof: bool = False,
) -> Result:
    """Send ``data`` (+ ``after``) over a socketpair, upgrade the server end, collect."""
    server, client = socket.socketpair()
    result = Result()
    received: list[bytes] = []

    def peer() -> None:
        try:
            payload = data + after
            if chunk:
                for i in range(0, len(payload), chunk):
                    client.sendall(payload[i : i + chunk])
                    if delay:
                        time.sleep(delay)
            else:
                client.sendall(payload)
            if eof:
                client.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused and closed before all was sent
        while True:
            try:
                got = client.recv(65536)
            except OSError:
                break
            if not got:
                break
            received.append(got)

    thread = threading.Thread(target=peer)
    thread.start()
    try:
        try:
            result.handshake = upgrader.upgrade(server)
        except Exception as exc:
            result.error = exc
        if result.handshake is not None and after:
            # Pipelined bytes must still be in the socket, exactly.
            want = len(after)
            got = b""
            while len(got) < want:
                part = server.recv(want - len(got))
                if not part:
                    break
                got += part
            result.after = got
        # Read side too: a peer still sending what was refused gets EPIPE, not a hang.
        server.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=30)
    finally:
        server.close()
        thread.join(timeout=30)
        client.close()
    result.response = b"".join(received)
    return result


def rejected(result: Result) -> RejectConnectionError:
    assert isinstance(result.error, RejectConnectionError), result.error
    assert result.error.status == result.status
    return result.error


# -- success -------------------------------------------------------------------------


def test_upgrade_answers_101() -> None:
    result = run(Upgrader(), request())
    assert result.error is None
    assert result.handshake == Handshake(None, [])
    assert result.response == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n\r\n"
    )


def test_module_level_upgrade() -> None:
    server, client = socket.socketpair()
    with server, client:
        client.sendall(request())
        assert wsio.upgrade(server) == Handshake()
        assert client.recv(4096).startswith(b"HTTP/1.1 101 ")


@pytest.mark.parametrize(
    "data",
    [
        request(),
        request(line=b"GET /chat HTTP/1.2"),
        request(line=b"GET http://server.example.com/chat?x=1 HTTP/1.1"),
        request().replace(b"Upgrade: websocket", b"upgrade: WEBSOCKET"),
        request().replace(b"Connection: Upgrade", b"Connection: keep-alive, UPGRADE"),
        b"GET /chat HTTP/1.1\r\n"
        + b"".join(f"{k.lower()}: {v}\r\n".encode() for k, v in BASE_HEADERS)
        + b"\r\n",
        request(replace={"Upgrade": "h2c, websocket"}),
        request(add=[("Connection", "keep-alive")]),
        request(replace={"Connection": "keep-alive"}, add=[("Connection", "Upgrade")]),
        request(replace={"Sec-WebSocket-Version": " 13 "}),
        request(add=[("Sec-WebSocket-Extensions", "")]),
        request(add=[("Sec-WebSocket-Protocol", " , ")]),
        request(add=[("Content-Length", "0")]),
        b"\r\n" + request(),
        request().replace(b"\r\n", b"\n"),
    ],
)
def test_acceptable_requests(data: bytes) -> None:
    result = run(Upgrader(), data)
    assert result.error is None
    assert result.status == 101
    assert result.header("Sec-WebSocket-Accept") == ACCEPT


# -- refusals ------------------------------------------------------------------------

REFUSALS: list[tuple[str, bytes, int]] = [
    ("HTTP/1.0", request(line=b"GET /chat HTTP/1.0"), 505),
    ("HTTP/2.0", request(line=b"GET /chat HTTP/2.0"), 505),
    ("HTTP/0.9", request(line=b"GET /chat HTTP/0.9"), 505),
    ("HTTP/42.1092", request(line=b"GET /chat HTTP/42.1092"), 505),
    ("POST", request(line=b"POST /chat HTTP/1.1"), 405),
    ("HEAD", request(line=b"HEAD /chat HTTP/1.1"), 405),
    ("lowercase get", request(line=b"get /chat HTTP/1.1"), 405),
    ("no Host", request(drop=("Host",)), 400),
    ("two Hosts", request(add=[("Host", "other")]), 400),
    ("no Upgrade", request(drop=("Upgrade",)), 400),
    ("Upgrade h2c", request(replace={"Upgrade": "h2c"}), 400),
    ("Upgrade websocket2", request(replace={"Upgrade": "websocket2"}), 400),
    ("no Connection", request(drop=("Connection",)), 400),
    ("Connection keep-alive", request(replace={"Connection": "keep-alive"}), 400),
    ("Connection upgraded", request(replace={"Connection": "upgraded"}), 400),
    ("no key", request(drop=("Sec-WebSocket-Key",)), 400),
    ("short key", request(replace={"Sec-WebSocket-Key": "dGhlIHNhbXBsZQ=="}), 400),
    ("key of 15 bytes", request(replace={"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"}), 400),
    ("key of 17 bytes", request(replace={"Sec-WebSocket-Key": "A" * 23 + "="}), 400),
    ("key not base64", request(replace={"Sec-WebSocket-Key": "!" * 22 + "=="}), 400),
    ("key 8 KiB long", request(replace={"Sec-WebSocket-Key": "A" * 8000}), 400),
    ("same key twice", request(add=[("Sec-WebSocket-Key", KEY)]), 400),
    ("conflicting keys", request(add=[("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==")]), 400),
    ("no version", request(drop=("Sec-WebSocket-Version",)), 400),
    ("version 8", request(replace={"Sec-WebSocket-Version": "8"}), 426),
    ("version 13, 8", request(replace={"Sec-WebSocket-Version": "13, 8"}), 426),
    ("two versions", request(add=[("Sec-WebSocket-Version", "13")]), 400),
    ("protocol =[", request(add=[("Sec-WebSocket-Protocol", "=[")]), 400),
    ("protocol with spaces", request(add=[("Sec-WebSocket-Protocol", "a b")]), 400),
    ("protocol non-ASCII", request(add=[("Sec-WebSocket-Protocol", "caf\xe9")]), 400),
    ("extensions =[", request(add=[("Sec-WebSocket-Extensions", "=[")]), 400),
    ("extension unterminated", request(add=[("Sec-WebSocket-Extensions", 'a; b="\\c')]), 400),
    ("request line too long", request(line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"), 414),
    ("header line too long", request(add=[("Cookie", "x" * 9000)]), 431),
    ("too many headers", request(add=[("X-A", "b")] * 200), 431),
    ("head too large", request(add=[("X-A", "b" * 8000)] * 9), 431),
    ("Content-Length 5", request(add=[("Content-Length", "5")]), 400),
    ("Transfer-Encoding", request(add=[("Transfer-Encoding", "chunked")]), 400),
    ("obs-fold", request(raw=b"X-A: 1\r\n  folded\r\n"), 400),
    ("space before colon", request(raw=b"X-A : 1\r\n"), 400),
    ("NUL in value", request(raw=b"X-A: 1\x002\r\n"), 400),
    ("bare CR in value", request(raw=b"X-A: 1\r2\r\n"), 400),
    ("no colon", request(raw=b"X-A 1\r\n"), 400),
    ("TLS hello on plain port", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("request line garbage", b"GET\r\n\r\n", 400),
]


@pytest.mark.parametrize(("name", "data", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals(name: str, data: bytes, status: int) -> None:
    result = run(Upgrader(), data)
    error = rejected(result)
    assert result.status == status
    assert error.status == status
    assert result.header("Connection") == "close"
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert int(result.header("Content-Length") or -1) == len(result.body)
    assert result.body.decode() == error.reason
    assert b"Traceback" not in result.response


def test_405_says_allow_get() -> None:
    result = run(Upgrader(), request(line=b"POST / HTTP/1.1"))
    assert result.header("Allow") == "GET"
    assert ("Allow", "GET") in rejected(result).headers


def test_426_says_version_13() -> None:
    result = run(Upgrader(), request(replace={"Sec-WebSocket-Version": "8"}))
    assert result.status == 426
    assert result.header("Sec-WebSocket-Version") == "13"
    assert ("Sec-WebSocket-Version", "13") in rejected(result).headers


def test_ten_thousand_headers_is_431() -> None:
    data = request(add=[("X-A", "b")] * 10_000)
    result = run(Upgrader(), data, chunk=4096)
    assert result.status == 431
    assert rejected(result).status == 431


def test_one_mebibyte_header_line_is_431() -> None:
    data = request(add=[("X-Big", "y" * (1 << 20))])
    result = run(Upgrader(), data, chunk=65536)
    assert result.status == 431


def test_key_placed_after_the_header_limit_is_431_not_a_crash() -> None:
    # CVE-2024-37890's shape: the key comes after 2000 other headers.
    data = request(
        drop=("Sec-WebSocket-Key",), add=[("X-A", "b")] * 2000 + [("Sec-WebSocket-Key", KEY)]
    )
    assert run(Upgrader(), data).status == 431


def test_limits_are_configurable() -> None:
    upgrader = Upgrader(max_line=64, max_headers=6, max_head_size=4096)
    assert run(upgrader, request()).status == 101
    assert run(upgrader, request(add=[("X-A", "b")])).status == 101
    assert run(upgrader, request(add=[("X-A", "b")] * 2)).status == 431
    assert run(upgrader, request(add=[("X-A", "b" * 70)])).status == 431
    assert run(upgrader, request(line=b"GET /" + b"a" * 70 + b" HTTP/1.1")).status == 414
    with pytest.raises(ValueError):
        Upgrader(max_line=1)


def test_eof_before_the_head_ends() -> None:
    result = run(Upgrader(), request()[:-2], eof=True)
    assert isinstance(result.error, UnexpectedEOFError)
    assert result.response == b""


def test_timeout_is_handshake_timeout_and_restored() -> None:
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"GET / HTTP/1.1\r\n")
        server.settimeout(None)
        with pytest.raises(HandshakeTimeoutError):
            Upgrader(timeout=0.05).upgrade(server)
        assert server.gettimeout() is None


# -- splits, drips and pipelining ------------------------------------------------------


def test_head_in_one_byte_chunks_over_a_socketpair() -> None:
    result = run(Upgrader(), request(), chunk=1, after=b"\x81\x85" + b"abcd" + b"12345")
    assert result.status == 101
    assert result.after == b"\x81\x85abcd12345"


def test_slowly_dripping_head() -> None:
    result = run(Upgrader(), request(), chunk=7, delay=0.002, after=b"tail")
    assert result.status == 101
    assert result.after == b"tail"


def test_pipelined_bytes_stay_in_the_socket() -> None:
    frame = b"\x81\x82" + b"\x01\x02\x03\x04" + bytes([ord("h") ^ 1, ord("i") ^ 2])
    result = run(Upgrader(), request(), after=frame * 3)
    assert result.status == 101
    assert result.after == frame * 3


def test_small_read_buffer() -> None:
    result = run(Upgrader(read_buffer_size=5), request(), after=b"xyz")
    assert result.status == 101
    assert result.after == b"xyz"


class FileStream:
    """A binary file-like stream: readinto from ``data``, write into ``out``."""

    def __init__(self, data: bytes) -> None:
        self.input = io.BytesIO(data)
        self.out = io.BytesIO()

    def readinto(self, buffer: memoryview) -> int:
        return self.input.readinto(buffer)

    def write(self, data: bytes) -> int:
        return self.out.write(data)

    def flush(self) -> None:
        pass


def test_file_like_stream_keeps_read_ahead() -> None:
    stream = FileStream(request() + b"frames")
    handshake = Upgrader().upgrade(stream)
    assert bytes(handshake.read_ahead) == b"frames"
    assert stream.out.getvalue().startswith(b"HTTP/1.1 101 ")


def test_upgrade_conn_serves_read_ahead_first() -> None:
    server, client = socket.socketpair()
    with server, client:
        # A Conn that already holds the request and more (e.g. read by a router).
        wrapped = Conn(server, request() + b"early")
        client.sendall(b"-late")
        conn, handshake = Upgrader().upgrade_conn(wrapped)
        assert handshake == Handshake()
        assert client.recv(4096).startswith(b"HTTP/1.1 101 ")
        data = b""
        while len(data) < 10:
            data += conn.recv(100)
        assert data == b"early-late"


# -- subprotocols and extensions -------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "offers", "chosen"),
    [
        (["b", "d"], [("Sec-WebSocket-Protocol", "a, b, c, d")], "b"),
        (["d", "b"], [("Sec-WebSocket-Protocol", "a, b, c, d")], "b"),
        (["b", "d"], [("Sec-WebSocket-Protocol", "a"), ("Sec-WebSocket-Protocol", "d, b")], "d"),
        (["x"], [("Sec-WebSocket-Protocol", "a, b")], None),
        (["x"], [], None),
        (lambda name: name.startswith("c"), [("Sec-WebSocket-Protocol", "a,b,c,d")], "c"),
        (None, [("Sec-WebSocket-Protocol", "a")], None),
    ],
)
def test_subprotocol_selection(
    protocol: Any, offers: list[tuple[str, str]], chosen: str | None
) -> None:
    result = run(Upgrader(protocol=protocol), request(add=offers))
    assert result.handshake == Handshake(chosen, [])
    assert result.header("Sec-WebSocket-Protocol") == chosen


def test_protocol_custom_gets_the_raw_value() -> None:
    seen: list[str] = []

    def custom(raw: str) -> str | None:
        seen.append(raw)
        return "v2.chat"

    offers = [("Sec-WebSocket-Protocol", "v1.chat,  v2.chat"), ("Sec-WebSocket-Protocol", "x")]
    result = run(Upgrader(protocol=["x"], protocol_custom=custom), request(add=offers))
    assert seen == ["v1.chat,  v2.chat, x"]
    assert result.handshake == Handshake("v2.chat", [])


def test_protocol_custom_returning_a_bad_value_is_500() -> None:
    result = run(
        Upgrader(protocol_custom=lambda raw: "a\r\nX-Evil: 1"),
        request(add=[("Sec-WebSocket-Protocol", "a")]),
    )
    assert result.status == 500
    assert b"X-Evil" not in result.response


def test_negotiate_per_offer_in_order() -> None:
    # gobwas/ws's case: a;foo=1,b;bar=2,c,d;baz=3 -> b;bar=2,d;baz=3
    offered: list[Option] = []

    def negotiate(option: Option) -> Option | None:
        offered.append(option)
        return option if option.name in ("b", "d") else None

    data = request(add=[("Sec-WebSocket-Extensions", "a;foo=1,b;bar=2,c,d;baz=3")])
    result = run(Upgrader(negotiate=negotiate), data)
    assert [o.name for o in offered] == ["a", "b", "c", "d"]
    assert result.handshake == Handshake(
        None, [Option("b", (("bar", "2"),)), Option("d", (("baz", "3"),))]
    )
    assert result.header("Sec-WebSocket-Extensions") == "b; bar=2, d; baz=3"


def test_extensions_without_negotiate_are_declined() -> None:
    data = request(add=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    result = run(Upgrader(), data)
    assert result.handshake == Handshake()
    assert result.header("Sec-WebSocket-Extensions") is None


def test_negotiate_returning_a_wrong_type_is_500() -> None:
    data = request(add=[("Sec-WebSocket-Extensions", "a")])
    result = run(Upgrader(negotiate=lambda o: "a"), data)  # type: ignore[arg-type,return-value]
    assert result.status == 500


def test_protocol_configuration_is_checked() -> None:
    with pytest.raises(TypeError):
        Upgrader(protocol="chat")
    with pytest.raises(LocalProtocolError):
        Upgrader(protocol=["a b"])


# -- hooks ---------------------------------------------------------------------------


def test_hooks_see_the_right_values() -> None:
    calls: list[tuple[Any, ...]] = []
    kept: list[memoryview] = []

    def on_header(key: Any, value: Any) -> None:
        assert isinstance(key, memoryview) and isinstance(value, memoryview)
        kept.append(value)
        calls.append(("header", bytes(key), bytes(value)))

    upgrader = Upgrader(
        on_request=lambda uri: calls.append(("request", bytes(uri))),
        on_host=lambda host: calls.append(("host", bytes(host))),
        on_header=on_header,
        on_before_upgrade=lambda: calls.append(("before",)),
    )
    data = request(
        add=[
            ("cookie", "a=b"),
            ("X-FORWARDED-FOR", "1.2.3.4"),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Foo", "bar"),
            ("Hostname", "h"),
        ]
    )
    result = run(upgrader, data)
    assert result.status == 101
    assert calls == [
        ("request", b"/chat"),
        ("host", b"server.example.com"),
        ("header", b"Cookie", b"a=b"),
        ("header", b"X-Forwarded-For", b"1.2.3.4"),
        ("header", b"Sec-Websocket-Foo", b"bar"),
        ("header", b"Hostname", b"h"),
        ("before",),
    ]
    # The views die with the hook call: keeping one is caught, not silently wrong.
    with pytest.raises(ValueError):
        bytes(kept[0])


def test_hook_bytes_gives_bytes() -> None:
    seen: list[Any] = []
    upgrader = Upgrader(
        hook_bytes=True,
        on_request=seen.append,
        on_host=seen.append,
        on_header=lambda k, v: seen.append((k, v)),
    )
    run(upgrader, request(add=[("cookie", "a=b")]))
    assert seen == [b"/chat", b"server.example.com", (b"Cookie", b"a=b")]


def test_before_upgrade_and_header_add_response_headers() -> None:
    upgrader = Upgrader(
        header=[("X-Server", "wsio")],
        on_before_upgrade=lambda: {"X-Python-Version": "3", "Set-Cookie": "s=1"},
    )
    result = run(upgrader, request())
    assert result.status == 101
    assert result.header("X-Server") == "wsio"
    assert result.header("X-Python-Version") == "3"
    assert result.header("Set-Cookie") == "s=1"
    # ... and `header` on refusals too.
    refused = run(upgrader, request(drop=("Host",)))
    assert refused.header("X-Server") == "wsio"
    assert ("X-Server", "wsio") in rejected(refused).headers


def test_header_forms() -> None:
    for header in (b"X-A: 1\r\n", "X-A: 1\r\n", {"X-A": "1"}, [("X-A", b"1")]):
        assert run(Upgrader(header=header), request()).header("X-A") == "1"
    for bad in (b"X-A: 1", "X-A 1\r\n", {"X-A": "1\r\nX-B: 2"}, [("X A", "1")], {"X": "\x00"}):
        with pytest.raises(LocalProtocolError):
            Upgrader(header=bad)


HOOKS = ["on_request", "on_host", "on_header", "on_before_upgrade", "protocol", "negotiate"]


def _hooked(name: str, hook: Callable[..., Any]) -> tuple[Upgrader, bytes]:
    data = request(
        add=[
            ("Cookie", "a=b"),
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
        ]
    )
    kwargs: dict[str, Any] = {name: hook}
    if name == "protocol":
        kwargs[name] = lambda offered: hook()
    return Upgrader(**kwargs), data


@pytest.mark.parametrize("name", [*HOOKS, "protocol_custom"])
def test_reject_from_each_hook(name: str) -> None:
    def hook(*args: Any) -> Any:
        raise RejectConnectionError("go away", status=403, headers=[("X-Why", "policy")])

    upgrader, data = _hooked(name, hook)
    result = run(upgrader, data)
    assert result.status == 403
    assert result.body == b"go away"
    assert result.header("X-Why") == "policy"
    error = rejected(result)
    assert (error.status, error.reason) == (403, "go away")
    assert ("X-Why", "policy") in error.headers


@pytest.mark.parametrize("name", [*HOOKS, "protocol_custom"])
def test_other_exception_from_each_hook_is_500_without_its_text(name: str) -> None:
    def hook(*args: Any) -> Any:
        raise KeyError("secret database password")

    upgrader, data = _hooked(name, hook)
    result = run(upgrader, data)
    assert result.status == 500
    assert b"secret" not in result.response
    assert b"KeyError" not in result.response
    assert result.body == b"Internal Server Error"
    error = rejected(result)
    assert isinstance(error.__cause__, KeyError)


def test_hook_response_headers_with_crlf_are_500() -> None:
    upgrader = Upgrader(on_before_upgrade=lambda: {"X-A": "1\r\nX-Injected: yes"})
    result = run(upgrader, request())
    assert result.status == 500
    assert b"X-Injected" not in result.response
    assert isinstance(rejected(result).__cause__, LocalProtocolError)


def test_rejection_headers_with_crlf_are_500() -> None:
    def on_host(host: Any) -> None:
        raise RejectConnectionError("no", status=403, headers=[("X-A", "1\r\nX-Injected: yes")])

    result = run(Upgrader(on_host=on_host), request())
    assert result.status == 500
    assert b"X-Injected" not in result.response


def test_rejection_with_odd_status_becomes_500() -> None:
    def on_host(host: Any) -> None:
        raise RejectConnectionError("weird", status=200)

    result = run(Upgrader(on_host=on_host), request())
    assert result.status == 500


def test_debug_upgrader_sees_raw_bytes() -> None:
    requests: list[bytes] = []
    responses: list[bytes] = []
    debug = DebugUpgrader(on_request=requests.append, on_response=responses.append)
    result = run(debug, request(), after=b"frame")
    assert requests == [request()]
    assert responses == [result.response]
    assert result.after == b"frame"
    refused = run(debug, request(drop=("Host",)))
    assert responses[-1] == refused.response


# -- anything goes in, only documented exceptions come out ----------------------------

_NAMES = st.sampled_from(
    [
        "Host",
        "Upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
        "Content-Length",
        "Cookie",
        "X-A",
    ]
)
_VALUES = st.sampled_from(["websocket", "Upgrade", KEY, "13", "chat", "a; b=1", "0", ""]) | (
    st.binary(max_size=30).map(lambda b: b.decode("latin-1"))
)


@given(
    st.lists(st.tuples(_NAMES, _VALUES), max_size=12),
    st.sampled_from(["GET", "POST", "G\x00T", ""]),
)
def test_check_request_accepts_or_refuses(headers: list[tuple[str, str]], method: str) -> None:
    upgrader = Upgrader(protocol=["chat"], negotiate=lambda option: option)
    try:
        accepted = check_request(method, [*BASE_HEADERS, *headers], upgrader=upgrader)
    except RejectConnectionError as exc:
        assert exc.status in (400, 405, 426, 500, 505)
        assert exc.status != 500  # nothing here is a server bug
    else:
        assert accepted.response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=1, max_value=64))
def test_upgrade_on_arbitrary_bytes(data: bytes, chunk: int) -> None:
    result = run(Upgrader(), data, chunk=chunk, eof=True)
    if result.handshake is None:
        assert isinstance(result.error, (RejectConnectionError, UnexpectedEOFError))
        if isinstance(result.error, RejectConnectionError):
            assert result.status == result.error.status
        else:
            assert result.response == b""


# -- framework-agnostic pair -----------------------------------------------------------


def test_check_request_and_build_response() -> None:
    accepted = check_request("GET", BASE_HEADERS, target="/chat")
    assert accepted.handshake == Handshake()
    assert accepted.response == build_response(ACCEPT)
    with_all = check_request(
        b"GET",
        [*BASE_HEADERS, ("Sec-WebSocket-Protocol", "chat")],
        upgrader=Upgrader(protocol=["chat"], on_before_upgrade=lambda: [("X-A", "1")]),
    )
    assert with_all.handshake.subprotocol == "chat"
    assert with_all.response == build_response(ACCEPT, subprotocol="chat", headers={"X-A": "1"})


def test_check_request_refusals_carry_the_answer() -> None:
    with pytest.raises(RejectConnectionError) as info:
        check_request("GET", [*BASE_HEADERS[:-1], ("Sec-WebSocket-Version", "7")])
    error = info.value
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers
    answer = build_rejection(error.status, error.reason, error.headers)
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer
    with pytest.raises(RejectConnectionError) as info:
        check_request("GET", BASE_HEADERS, version=(1, 0))
    assert info.value.status == 505


def test_build_response_and_rejection() -> None:
    assert build_response(
        ACCEPT, subprotocol="chat", extensions=[Option("x", (("a", "1"),))], headers=b"X: y\r\n"
    ) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\n"
        b"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: x; a=1\r\nX: y\r\n\r\n"
    )
    assert build_rejection(403, "nope", {"X-A": "1"}) == (
        b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 4\r\nX-A: 1\r\n\r\nnope"
    )
    assert build_rejection(404).endswith(b"\r\n\r\nNot Found")
    assert build_rejection(299).startswith(b"HTTP/1.1 500 ")
    with pytest.raises(LocalProtocolError):
        build_response(ACCEPT, subprotocol="a b")
    with pytest.raises(LocalProtocolError):
        build_response("x\r\n")


# -- frames over the upgraded connection -------------------------------------------------


def read_text(conn: Any) -> str:
    """Read one masked client text frame and return its text."""
    frame = wsio.read_frame(conn)
    assert frame.header.masked
    wsio.unmask_frame_in_place(frame)
    return bytes(frame.payload).decode()


def send_text(conn: Any, text: str) -> None:
    wsio.write_frame(conn, wsio.new_text_frame(text))


def echo_until_close(conn: Any, deflate: bool = False) -> None:
    """Echo text frames (inflating RSV1 ones when ``deflate``) until a Close arrives."""
    inflater = zlib.decompressobj(-15)
    while True:
        frame = wsio.read_frame(conn)
        wsio.unmask_frame_in_place(frame)
        payload = bytes(frame.payload)
        if frame.header.opcode == 8:
            wsio.write_frame(conn, wsio.new_close_frame(payload[:2]))
            return
        if frame.header.rsv & 0x4:
            assert deflate
            # RFC 7692 §7.2.2: append 00 00 ff ff, then inflate.
            payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
        send_text(conn, payload.decode())


def test_frames_by_hand_after_the_upgrade() -> None:
    # A hand-made masked frame pipelined behind the request, and our unmasked reply.
    text = b"hello"
    mask = b"\x11\x22\x33\x44"
    masked = bytearray(text)
    cipher(masked, mask)
    frame = struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + bytes(masked)
    server, client = socket.socketpair()
    with server, client:
        client.sendall(request() + frame)
        Upgrader().upgrade(server)
        assert read_text(server) == "hello"
        server.sendall(struct.pack("!BB", 0x81, 2) + b"ok")
        data = b""
        while not data.endswith(b"ok"):
            data += client.recv(4096)
        assert data.endswith(b"\r\n\r\n\x81\x02ok")


# -- real peers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context) with a certificate made for this run."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


@contextmanager
def serving(
    upgrader: Upgrader, context: ssl.SSLContext | None = None, deflate: bool = False
) -> Iterator[tuple[str, list[Any]]]:
    """A loopback server: one thread per connection, upgrade then echo until Close."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    outcomes: list[Any] = []
    threads: list[threading.Thread] = []

    def handle(sock: socket.socket) -> None:
        try:
            with sock:
                stream: Any = sock
                if context is not None:
                    stream = context.wrap_socket(sock, server_side=True)
                conn, handshake = upgrader.upgrade_conn(stream)
                outcomes.append(handshake)
                echo_until_close(conn, deflate)
                conn.close()
        except Exception as exc:
            outcomes.append(exc)

    stopping = threading.Event()

    def accept() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            if stopping.is_set():  # the wake-up connection of the teardown
                sock.close()
                return
            sock.settimeout(10)
            thread = threading.Thread(target=handle, args=(sock,))
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept)
    acceptor.start()
    scheme = "wss" if context else "ws"
    try:
        yield f"{scheme}://127.0.0.1:{port}/chat", outcomes
    finally:
        stopping.set()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            pass
        acceptor.join(timeout=10)
        listener.close()
        for thread in threads:
            thread.join(timeout=10)


def _accept_deflate(option: Option) -> Option | None:
    if option.name != "permessage-deflate":
        return None
    # No context takeover on the client side, so each message inflates on its own; the
    # reply parameters the client may need, without values it did not ask for.
    return Option("permessage-deflate", (("client_no_context_takeover", None),))


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("accept_deflate", [False, True], ids=["decline", "accept"])
def test_websockets_client(
    tls: tuple[ssl.SSLContext, ssl.SSLContext], secure: bool, accept_deflate: bool
) -> None:
    offers: list[Option] = []

    def negotiate(option: Option) -> Option | None:
        offers.append(option)
        return _accept_deflate(option) if accept_deflate else None

    upgrader = Upgrader(protocol=["chat", "superchat"], negotiate=negotiate)
    server_ctx, client_ctx = tls
    with (
        serving(upgrader, server_ctx if secure else None, deflate=True) as (url, outcomes),
        websockets.sync.client.connect(
            url,
            subprotocols=[Subprotocol("superchat"), Subprotocol("chat")],
            ssl=client_ctx if secure else None,
            open_timeout=10,
            close_timeout=10,
        ) as ws,
    ):
        assert ws.subprotocol == "superchat"
        assert ws.response is not None
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
        if accept_deflate:
            assert extensions == "permessage-deflate; client_no_context_takeover"
        else:
            assert extensions is None
        for text in ("hello", "x" * 3000, "héllo"):
            ws.send(text)
            assert ws.recv(timeout=10) == text
    assert [o.name for o in offers] == ["permessage-deflate"]
    assert outcomes[0].subprotocol == "superchat"
    assert outcomes[1:] == []


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_aiohttp_client(tls: tuple[ssl.SSLContext, ssl.SSLContext], secure: bool) -> None:
    offers: list[Option] = []

    def negotiate(option: Option) -> None:
        offers.append(option)  # declined: aiohttp goes on uncompressed

    upgrader = Upgrader(protocol=["chat"], negotiate=negotiate)
    server_ctx, client_ctx = tls

    async def client(url: str) -> tuple[str | None, list[str]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                url,
                protocols=("other", "chat"),
                ssl=client_ctx if secure else False,
                compress=15,
                headers={"Cookie": "a=b"},
            ) as ws,
        ):
            replies = []
            for text in ("one", "two"):
                await ws.send_str(text)
                message = await ws.receive(timeout=10)
                replies.append(message.data)
            return ws.protocol, replies

    with serving(upgrader, server_ctx if secure else None) as (url, outcomes):
        try:
            protocol, replies = asyncio.run(client(url))
        finally:
            # aiohttp closes a TLS transport without waiting for its shutdown
            # (aio-libs/aiohttp#1925): about one run in 25, the socket under it is still
            # open when asyncio.run closes the loop. Collected here, its ResourceWarning
            # would otherwise fail whichever later test the garbage collector runs in.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                gc.collect()
    assert protocol == "chat"
    assert replies == ["one", "two"]
    assert offers and offers[0].name == "permessage-deflate"
    assert "client_max_window_bits" in offers[0]
    assert outcomes[0] == Handshake("chat", [])


def _masked_text(text: bytes, mask: bytes = b"\x0a\x0b\x0c\x0d") -> bytes:
    masked = bytearray(text)
    cipher(masked, mask)
    return struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + bytes(masked)


@pytest.mark.parametrize("method", ["upgrade", "upgrade_conn"])
def test_tls_read_ahead_is_kept(tls: tuple[ssl.SSLContext, ssl.SSLContext], method: str) -> None:
    # TLS cannot peek: a frame sent in the same record as the request is read with it,
    # and must come back through Handshake.read_ahead or the returned Conn.
    server_ctx, client_ctx = tls
    raw_server, raw_client = socket.socketpair()
    replies: list[bytes] = []

    def client() -> None:
        with client_ctx.wrap_socket(raw_client, server_hostname="localhost") as sock:
            sock.sendall(request() + _masked_text(b"early bird"))
            data = b""
            while not data.endswith(b"\x81\x0aearly bird"):
                part = sock.recv(4096)
                if not part:
                    break
                data += part
            replies.append(data)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        with server_ctx.wrap_socket(raw_server, server_side=True) as tls_sock:
            if method == "upgrade":
                handshake = Upgrader().upgrade(tls_sock)
                assert bytes(handshake.read_ahead) == _masked_text(b"early bird")
                conn: Any = Conn(tls_sock, handshake.read_ahead)
            else:
                conn, handshake = Upgrader().upgrade_conn(tls_sock)
                assert handshake.read_ahead == b""
            assert read_text(conn) == "early bird"
            send_text(conn, "early bird")
            thread.join(timeout=10)
    finally:
        thread.join(timeout=10)
    assert replies[0].startswith(b"HTTP/1.1 101 ")


def test_websockets_client_sees_a_rejection() -> None:
    def on_host(host: Any) -> None:
        raise RejectConnectionError("wrong host", status=403, headers=[("X-Want-Host", "x")])

    with (
        serving(Upgrader(on_host=on_host)) as (url, outcomes),
        pytest.raises(websockets.exceptions.InvalidStatus) as info,
    ):
        websockets.sync.client.connect(url, open_timeout=10)
    response = info.value.response
    assert response.status_code == 403
    assert response.headers["X-Want-Host"] == "x"
    assert response.body == b"wrong host"
    assert isinstance(outcomes[0], RejectConnectionError)


def test_websockets_sans_io_request_is_accepted() -> None:
    # The bytes websockets' own client protocol writes, fed to wsio's Upgrader, and
    # wsio's answer fed back to websockets' client protocol (both sides sans-IO).
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    client = ClientProtocol(parse_uri("ws://example.com/chat"), subprotocols=[Subprotocol("chat")])
    client.send_request(client.connect())
    (data,) = client.data_to_send()
    result = run(Upgrader(protocol=["chat"]), data)
    assert result.handshake == Handshake("chat", [])
    client.receive_data(result.response)
    (event,) = client.events_received()
    assert isinstance(event, Response)
    assert event.status_code == 101
    assert client.handshake_exc is None


def test_websockets_server_protocol_agrees_on_our_test_request() -> None:
    # A sanity check of the test's own request: websockets accepts it the same way.
    protocol = ServerProtocol()
    request_event = Request("/chat", Headers(BASE_HEADERS))
    response = protocol.accept(request_event)
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Accept"] == accept_key(KEY)


# -- http.server -------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    outcomes: ClassVar[list[Any]] = []
    upgrader: ClassVar[Upgrader | None] = None

    def do_GET(self) -> None:
        try:
            conn, handshake = upgrade_http(self, self.upgrader)
        except RejectConnectionError as exc:
            self.outcomes.append(exc)
            return
        self.outcomes.append(handshake)
        echo_until_close(conn)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _WsioHandler(UpgradeRequestHandler, _Handler):
    """The same handler, with wsio reading the request heads."""


# Every upgrade_http test runs with http.server's parser and with wsio's.
HANDLERS = pytest.mark.parametrize("base", [_Handler, _WsioHandler], ids=["plain", "wsio"])


@contextmanager
def http_server(
    upgrader: Upgrader | None = None, base: type[_Handler] = _Handler
) -> Iterator[tuple[int, list[Any]]]:
    outcomes: list[Any] = []
    handler = type("Handler", (base,), {"outcomes": outcomes, "upgrader": upgrader})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_address[1], outcomes
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@HANDLERS
def test_upgrade_http_with_websockets_client(base: type[_Handler]) -> None:
    with (
        http_server(Upgrader(protocol=["chat"]), base) as (port, outcomes),
        websockets.sync.client.connect(
            f"ws://127.0.0.1:{port}/chat", subprotocols=[Subprotocol("chat")], open_timeout=10
        ) as ws,
    ):
        assert ws.subprotocol == "chat"
        ws.send("through http.server")
        assert ws.recv(timeout=10) == "through http.server"
    assert outcomes == [Handshake("chat", [])]


@HANDLERS
def test_upgrade_http_keeps_bytes_buffered_in_rfile(base: type[_Handler]) -> None:
    text = b"pipelined"
    mask = b"\x01\x02\x03\x04"
    masked = bytearray(text)
    cipher(masked, mask)
    frame = struct.pack("!BB", 0x81, 0x80 | len(text)) + mask + bytes(masked)
    close = struct.pack("!BB", 0x88, 0x80) + mask
    with (
        http_server(None, base) as (port, outcomes),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(request() + frame + close)
        data = b""
        while b"\x88" not in data.partition(b"\r\n\r\n")[2]:
            part = sock.recv(4096)
            assert part
            data += part
    head, _, frames = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert frames.startswith(b"\x81\x09pipelined")
    assert outcomes == [Handshake()]


@HANDLERS
def test_upgrade_http_refusal(base: type[_Handler]) -> None:
    with (
        http_server(None, base) as (port, outcomes),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(request(replace={"Sec-WebSocket-Version": "12"}))
        data = b""
        while True:
            part = sock.recv(4096)
            if not part:
                break
            data += part
    assert data.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in data
    assert isinstance(outcomes[0], RejectConnectionError)
    assert outcomes[0].status == 426


@HANDLERS
def test_upgrade_http_with_aiohttp_client_and_origins(base: type[_Handler]) -> None:
    async def talk(port: int, origin: str) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"http://127.0.0.1:{port}/", headers={"Origin": origin}) as ws,
        ):
            await ws.send_str("through http.server")
            return str(await ws.receive_str())

    upgrader = Upgrader(origins=["https://app.example"])
    with http_server(upgrader, base) as (port, outcomes):
        assert asyncio.run(talk(port, "https://app.example")) == "through http.server"
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            asyncio.run(talk(port, "https://evil.example"))
        assert info.value.status == 403
    assert outcomes[0] == Handshake()
    assert isinstance(outcomes[1], RejectConnectionError) and outcomes[1].status == 403


def test_upgrade_http_takes_origins_or_an_upgrader_not_both() -> None:
    with pytest.raises(TypeError):
        wsio.check_request("GET", [], upgrader=Upgrader(), origins=["https://a.example"])


def test_module_upgrade_takes_origins_and_timeout() -> None:
    result = run(
        DebugUpgrader(Upgrader(origins=["https://a.example"], timeout=5)),
        request(add=[("Origin", "https://b.example")]),
    )
    assert rejected(result).status == 403
    server, client = socket.socketpair()
    with server, client:
        client.sendall(request(add=[("Origin", "https://a.example")]))
        assert wsio.upgrade(server, origins=["https://a.example"], timeout=5) == Handshake()


def test_upgrade_sets_tcp_nodelay() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server:
            client.sendall(request())
            Upgrader().upgrade(server)
            assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
