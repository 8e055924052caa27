"""wsio.dialer: dial() and Dialer against real servers on loopback, and a table of bad responses.

Real peers: websockets (sync and asyncio servers), aiohttp's web server. The bad responses
come from a raw-socket server written here, which answers each request with whatever
bytes a case needs. HTTP CONNECT proxies are a small threaded proxy written here too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import importlib.util
import os
import re
import select
import socket
import ssl
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
import trustme
import websockets.asyncio.server
import websockets.exceptions
import websockets.sync.server
from aiohttp import web

import wsio
from wsio import wsflate
from wsio._engine.httphead import Option, accept_key, is_valid_key
from wsio._engine.mask import cipher
from wsio.conn import Conn
from wsio.dialer import Dialer, dial, encode_request_headers, parse_url
from wsio.exceptions import (
    HandshakeTimeoutError,
    InvalidAcceptError,
    InvalidConnectionError,
    InvalidStatusError,
    InvalidUpgradeError,
    LocalProtocolError,
    MalformedResponseError,
    UnexpectedEOFError,
    UnexpectedExtensionError,
    UnexpectedSubprotocolError,
)


# Every test must see no proxy from the machine's environment.
@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for scheme in ("http", "https", "all", "no", "ws", "wss"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)


# -- TLS ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost", "::1", "example.test").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_ssl(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# -- frames by hand ------------------------------------------------------------------------


def masked_text_frame(text: str) -> bytes:
    """A client's masked, final text frame (RFC 6455 §5.2), built with struct + cipher."""
    payload = bytearray(text.encode())
    mask = os.urandom(4)
    cipher(payload, mask)
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + payload


def text_frame(text: str) -> bytes:
    """A server's unmasked, final text frame."""
    payload = text.encode()
    assert len(payload) < 126
    return struct.pack("!BB", 0x81, len(payload)) + payload


def exchange(conn: Conn, text: str = "hello") -> wsio.Frame:
    """Send a masked text frame through ``conn`` and read the server's echo."""
    conn.sendall(masked_text_frame(text))
    return wsio.read_frame(conn)


def assert_echo(conn: Conn, text: str = "hello") -> None:
    frame = exchange(conn, text)
    assert frame.header.opcode == wsio.OpCode.TEXT
    assert frame.header.fin
    assert not frame.header.masked
    assert bytes(frame.payload) == text.encode()


# -- real servers ----------------------------------------------------------------------------


class Seen:
    """What a real server saw of the handshake."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.path = ""
        self.subprotocol: str | None = None

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


@contextlib.contextmanager
def websockets_sync_server(
    *, ssl_context: ssl.SSLContext | None = None, unix_path: str | None = None, **kwargs: Any
) -> Iterator[tuple[int, Seen]]:
    seen = Seen()

    def handler(ws: websockets.sync.server.ServerConnection) -> None:
        assert ws.request is not None
        seen.headers = list(ws.request.headers.raw_items())
        seen.path = ws.request.path
        seen.subprotocol = ws.subprotocol
        # The tests hang up without a closing handshake: that is not the server's error.
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            for message in ws:
                ws.send(message)

    if unix_path is not None:
        server = websockets.sync.server.unix_serve(handler, unix_path, **kwargs)
        port = 0
    else:
        server = websockets.sync.server.serve(handler, "127.0.0.1", 0, ssl=ssl_context, **kwargs)
        port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield port, seen
    finally:
        server.shutdown()
        thread.join()


@contextlib.contextmanager
def event_loop_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@contextlib.contextmanager
def websockets_asyncio_server(
    *, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
) -> Iterator[tuple[int, Seen]]:
    seen = Seen()

    async def handler(ws: websockets.asyncio.server.ServerConnection) -> None:
        assert ws.request is not None
        seen.headers = list(ws.request.headers.raw_items())
        seen.path = ws.request.path
        seen.subprotocol = ws.subprotocol
        with contextlib.suppress(websockets.exceptions.ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async def start() -> websockets.asyncio.server.Server:
        started: websockets.asyncio.server.Server = await websockets.asyncio.server.serve(
            handler, "127.0.0.1", 0, ssl=ssl_context, **kwargs
        )
        return started

    with event_loop_thread() as loop:
        server = asyncio.run_coroutine_threadsafe(start(), loop).result()
        port = next(iter(server.sockets)).getsockname()[1]
        try:
            yield port, seen
        finally:
            server.close()
            asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result()


@contextlib.contextmanager
def aiohttp_server(
    *, ssl_context: ssl.SSLContext | None = None, protocols: tuple[str, ...] = ()
) -> Iterator[tuple[int, Seen]]:
    seen = Seen()

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        seen.headers = list(request.headers.items())
        seen.path = request.path_qs
        ws = web.WebSocketResponse(protocols=protocols)
        await ws.prepare(request)
        seen.subprotocol = ws.ws_protocol
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def forbidden(request: web.Request) -> web.Response:
        return web.Response(status=403, text="go away", headers={"X-Why": "test"})

    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_get("/forbidden", forbidden)
    runner = web.AppRunner(app)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        address = runner.addresses[0]
        return int(address[1])

    with event_loop_thread() as loop:
        port = asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            yield port, seen
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()


# -- a raw server for hand-made responses -------------------------------------------------


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        assert len(data) < 65536
    return data


def request_key(request: bytes) -> str:
    match = re.search(rb"\r\nSec-WebSocket-Key: ([^\r]*)\r\n", request)
    assert match is not None
    return match.group(1).decode()


def response_101(request: bytes, extra: str = "", *, accept: str | None = None) -> bytes:
    key = accept_key(request_key(request)) if accept is None else accept
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {key}\r\n"
        f"{extra}\r\n"
    ).encode()


def echo_frames(sock: socket.socket) -> None:
    """Echo masked client frames back unmasked until the client goes away."""
    while True:
        try:
            frame = wsio.read_frame(sock)
        except (wsio.ConnectionEOFError, OSError):
            return
        frame = wsio.unmask_frame(frame)
        frame.header.masked = False
        frame.header.mask = None
        wsio.write_frame(sock, frame)


Respond = Callable[[bytes, socket.socket], None]


class RawServer:
    """Accepts connections on loopback; hands each request head to ``respond``.

    After ``respond`` returns, waits until the client closes, and records that it did
    (``closed`` is set), so a test can check the client closed the socket on an error.
    """

    def __init__(
        self, respond: Respond, *, family: int = socket.AF_INET, read_request: bool = True
    ) -> None:
        self.respond = respond
        self.read_request = read_request
        host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
        self.listener = socket.create_server((host, 0), family=family)
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.closed = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(10)
                try:
                    request = read_head(sock) if self.read_request else b""
                    self.requests.append(request)
                    self.respond(request, sock)
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
                except BaseException as exc:  # surfaced by close()
                    self.errors.append(exc)
                self.closed.set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    def close(self) -> None:
        # shutdown() wakes accept() on Linux; close() alone may not.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.thread.join()
        assert not self.errors, self.errors


@contextlib.contextmanager
def raw_server(respond: Respond, **kwargs: Any) -> Iterator[RawServer]:
    server = RawServer(respond, **kwargs)
    try:
        yield server
    finally:
        server.close()


def ok_then_echo(extra: str = "") -> Respond:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(response_101(request, extra))
        echo_frames(sock)

    return respond


# -- a CONNECT proxy ---------------------------------------------------------------------------


class ConnectProxy:
    """A threaded HTTP CONNECT proxy on loopback.

    Records each CONNECT target and Proxy-Authorization; tunnels to ``backend`` (a
    loopback (host, port)) whatever host the client named, so tests can use names that
    never resolve. With ``credentials`` set, anything else gets 407.
    """

    def __init__(self, backend: tuple[str, int], credentials: str | None = None) -> None:
        self.backend = backend
        self.credentials = credentials
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.targets: list[str] = []
        self.authorizations: list[str | None] = []
        self.threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept)
        accept.start()
        self.threads.append(accept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,))
            thread.start()
            self.threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        with client:
            client.settimeout(10)
            head = read_head(client)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            assert method == "CONNECT"
            auth = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "proxy-authorization":
                    auth = value.strip()
            self.targets.append(target)
            self.authorizations.append(auth)
            if self.credentials is not None:
                expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
                if auth != expected:
                    body = b"proxy authentication required"
                    client.sendall(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="test"\r\n'
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    return
            with socket.create_connection(self.backend, timeout=10) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while True:
            readable, _, _ = select.select(list(peers), [], [], 10)
            if not readable:
                return
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peers[sock].sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for thread in self.threads:
            thread.join()


@contextlib.contextmanager
def connect_proxy(
    backend: tuple[str, int], credentials: str | None = None
) -> Iterator[ConnectProxy]:
    proxy = ConnectProxy(backend, credentials)
    try:
        yield proxy
    finally:
        proxy.close()


# == tests: real servers ==================================================================


def test_websockets_sync_server() -> None:
    with websockets_sync_server(compression=None) as (port, seen):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/chat?room=1")
        with conn:
            assert handshake.subprotocol is None
            assert handshake.extensions == []
            assert_echo(conn, "hello")
            assert_echo(conn, "again")
    assert seen.path == "/chat?room=1"
    assert seen.header("Host") == f"127.0.0.1:{port}"
    assert seen.header("Sec-WebSocket-Version") == "13"
    assert is_valid_key(seen.header("Sec-WebSocket-Key") or "")


def test_websockets_asyncio_server() -> None:
    with websockets_asyncio_server(compression=None) as (port, _):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/")
        with conn:
            assert handshake.subprotocol is None
            assert_echo(conn)


def test_aiohttp_server() -> None:
    with aiohttp_server() as (port, seen):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/ws?x=1")
        with conn:
            assert handshake.subprotocol is None
            assert_echo(conn)
    assert seen.path == "/ws?x=1"


def test_aiohttp_status_error_with_body() -> None:
    with aiohttp_server() as (port, _), pytest.raises(InvalidStatusError) as info:
        dial(f"ws://127.0.0.1:{port}/forbidden")
    assert info.value.status == 403
    assert info.value.reason == "Forbidden"
    assert info.value.body == b"go away"
    assert ("X-Why", "test") in info.value.headers


def test_websockets_server_over_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with websockets_sync_server(ssl_context=server_ssl, compression=None) as (port, seen):
        conn, _ = dial(f"wss://127.0.0.1:{port}/", ssl=client_ssl)
        with conn:
            assert isinstance(conn.socket, ssl.SSLSocket)
            assert_echo(conn)
    # RFC 6455 §4.1: the default port is left out of Host, any other is given.
    assert seen.header("Host") == f"127.0.0.1:{port}"


def test_asyncio_server_over_tls_with_sni_override(
    server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    with websockets_asyncio_server(ssl_context=server_ssl, compression=None) as (port, _):
        conn, _ = dial(f"wss://127.0.0.1:{port}/", ssl=client_ssl, server_hostname="localhost")
        with conn:
            assert conn.socket.server_hostname == "localhost"  # type: ignore[attr-defined]
            assert_echo(conn)


def test_aiohttp_server_over_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with aiohttp_server(ssl_context=server_ssl) as (port, _):
        conn, _ = dial(f"wss://localhost:{port}/ws", ssl=client_ssl)
        with conn:
            assert_echo(conn)


def test_tls_certificate_is_checked(server_ssl: ssl.SSLContext) -> None:
    # The default context does not trust the test CA.
    with (
        websockets_sync_server(ssl_context=server_ssl) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        dial(f"wss://127.0.0.1:{port}/")


def test_tls_hostname_is_checked(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with (
        websockets_sync_server(ssl_context=server_ssl) as (port, _),
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        dial(f"wss://127.0.0.1:{port}/", ssl=client_ssl, server_hostname="other.test")


# websockets picks by the server's preference: the first of its own list that was offered.
@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["superchat", "chat"], "superchat"),
        (["chat"], "chat"),
        (["chat", "superchat"], "superchat"),
    ],
)
def test_subprotocol_chosen_by_websockets(offered: list[str], chosen: str) -> None:
    with websockets_sync_server(subprotocols=["superchat", "chat"], compression=None) as (
        port,
        seen,
    ):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/", subprotocols=offered)
        with conn:
            assert_echo(conn)
    assert handshake.subprotocol == chosen == seen.subprotocol
    assert seen.header("Sec-WebSocket-Protocol") == ", ".join(offered)


def test_subprotocol_required_by_websockets() -> None:
    with (
        websockets_sync_server(subprotocols=["chat"], compression=None) as (port, _),
        pytest.raises(InvalidStatusError) as info,
    ):
        dial(f"ws://127.0.0.1:{port}/", subprotocols=["other"])
    assert info.value.status == 400
    assert b"subprotocol" in info.value.body


def test_subprotocol_none_chosen() -> None:
    with websockets_sync_server(compression=None) as (port, _):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/", subprotocols=["chat"])
        with conn:
            assert handshake.subprotocol is None
            assert_echo(conn)


def test_subprotocol_with_aiohttp() -> None:
    with aiohttp_server(protocols=("v2", "v1")) as (port, seen):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/ws", subprotocols=["v1"])
        with conn:
            assert_echo(conn)
    assert handshake.subprotocol == "v1" == seen.subprotocol


def inflate(payload: bytes) -> bytes:
    # RFC 7692 §7.2.2: append 00 00 ff ff and inflate with a raw deflate stream.
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


DEFLATE = Option("permessage-deflate", (("client_max_window_bits", None),))


def test_extension_offer_accepted_by_websockets() -> None:
    with websockets_sync_server(compression="deflate") as (port, seen):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/", extensions=[DEFLATE])
        with conn:
            assert [option.name for option in handshake.extensions] == ["permessage-deflate"]
            # An uncompressed message is allowed; the echo comes back compressed (RSV1).
            frame = exchange(conn, "hello hello hello")
            assert frame.header.rsv == 0b100
            assert inflate(bytes(frame.payload)) == b"hello hello hello"
    assert seen.header("Sec-WebSocket-Extensions") == "permessage-deflate; client_max_window_bits"


def test_extension_offer_declined() -> None:
    with websockets_sync_server(compression=None) as (port, _):
        conn, handshake = dial(f"ws://127.0.0.1:{port}/", extensions=[DEFLATE])
        with conn:
            assert handshake.extensions == []
            assert_echo(conn)


def test_extension_offer_accepted_by_aiohttp() -> None:
    with aiohttp_server() as (port, _):
        conn, handshake = dial(
            f"ws://127.0.0.1:{port}/ws", extensions=[Option("permessage-deflate")]
        )
        with conn:
            assert [option.name for option in handshake.extensions] == ["permessage-deflate"]


def test_accept_extensions_hook_sees_offer_and_answer() -> None:
    calls: list[tuple[list[Option], list[Option]]] = []

    def accept(offered: Any, accepted: list[Option]) -> list[Option]:
        calls.append((list(offered), list(accepted)))
        return [Option("permessage-deflate", (("checked", None),))]

    with websockets_sync_server(compression="deflate") as (port, _):
        conn, handshake = dial(
            f"ws://127.0.0.1:{port}/", extensions=[DEFLATE], accept_extensions=accept
        )
        conn.close()
    assert calls[0][0] == [DEFLATE]
    assert [option.name for option in calls[0][1]] == ["permessage-deflate"]
    assert handshake.extensions == [Option("permessage-deflate", (("checked", None),))]


@pytest.mark.parametrize("server", ["websockets", "aiohttp"])
def test_wsflate_plugs_into_the_dialer(server: str) -> None:
    extension = wsflate.Extension()
    dialer = Dialer(extensions=[extension.offer()], accept_extensions=extension.accept_extensions)
    serve = (
        websockets_sync_server(compression="deflate")
        if server == "websockets"
        else (aiohttp_server())
    )
    with serve as (port, _):
        conn, handshake = dialer.dial(f"ws://127.0.0.1:{port}/ws")
        conn.close()
    assert [option.name for option in handshake.extensions] == ["permessage-deflate"]
    assert extension.accepted() is not None


def test_accept_extensions_hook_can_refuse() -> None:
    def refuse(offered: Any, accepted: list[Option]) -> None:
        raise UnexpectedExtensionError("parameters not acceptable")

    with raw_server(
        ok_then_echo("Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n")
    ) as server:
        with pytest.raises(UnexpectedExtensionError, match="parameters"):
            dial(server.url, extensions=[DEFLATE], accept_extensions=refuse)
        assert server.closed.wait(10)


def test_unix_socket_path_option() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        with websockets_sync_server(unix_path=path, compression=None) as (_, seen):
            conn, _ = dial("ws://app.internal/unix", unix_path=path)
            with conn:
                assert_echo(conn)
    assert seen.header("Host") == "app.internal"
    assert seen.path == "/unix"


def test_unix_socket_url() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        encoded = path.replace("/", "%2F")
        with websockets_sync_server(unix_path=path, compression=None) as (_, seen):
            conn, _ = dial(f"ws+unix://{encoded}/over/unix?q=1")
            with conn:
                assert_echo(conn)
    assert seen.header("Host") == "localhost"
    assert seen.path == "/over/unix?q=1"


def test_tls_over_unix_socket(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "wss.sock")
        with websockets_sync_server(unix_path=path, ssl=server_ssl, compression=None) as _:
            conn, _ = dial(f"wss+unix://{path.replace('/', '%2F')}/", ssl=client_ssl)
            with conn:
                assert isinstance(conn.socket, ssl.SSLSocket)
                assert_echo(conn)


# == tests: the request ==================================================================


def test_request_head() -> None:
    with raw_server(ok_then_echo()) as server:
        conn, _ = dial(
            f"ws://user:p%40ss@127.0.0.1:{server.port}/a b/é?q=1&r=ü",
            subprotocols=["chat", "v2.chat"],
            extensions=[DEFLATE, Option("x-test", (("a", "1"), ("b", "two words")))],
            headers=[("Origin", "https://example.test"), ("Cookie", "a=1; b=2")],
        )
        with conn:
            assert_echo(conn)
    request = server.requests[0]
    lines = request.decode("latin-1").split("\r\n")
    assert lines[0] == "GET /a%20b/%C3%A9?q=1&r=%C3%BC HTTP/1.1"
    assert lines[1:7] == [
        f"Host: 127.0.0.1:{server.port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {request_key(request)}",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: chat, v2.chat",
    ]
    assert lines[7] == (
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, "
        'x-test; a=1; b="two words"'
    )
    assert lines[8] == "Authorization: Basic " + base64.b64encode(b"user:p@ss").decode()
    assert lines[9:11] == ["Origin: https://example.test", "Cookie: a=1; b=2"]
    assert lines[11:] == ["", ""]
    assert is_valid_key(request_key(request))


def test_keys_are_fresh() -> None:
    with raw_server(ok_then_echo()) as server:
        for _ in range(3):
            conn, _ = dial(server.url)
            conn.close()
    keys = {request_key(request) for request in server.requests}
    assert len(keys) == 3


def test_explicit_authorization_wins_over_url_userinfo() -> None:
    with raw_server(ok_then_echo()) as server:
        conn, _ = dial(
            f"ws://u:p@127.0.0.1:{server.port}/", headers={"Authorization": "Bearer token"}
        )
        conn.close()
    assert server.requests[0].count(b"Authorization") == 1
    assert b"Authorization: Bearer token\r\n" in server.requests[0]


def test_host_override_and_default_port() -> None:
    with raw_server(ok_then_echo()) as server:
        conn, _ = dial(server.url, host="example.test")
        conn.close()
    assert b"\r\nHost: example.test\r\n" in server.requests[0]


def test_ipv6_host_in_brackets() -> None:
    with raw_server(ok_then_echo(), family=socket.AF_INET6) as server:
        conn, _ = dial(f"ws://[::1]:{server.port}/v6")
        with conn:
            assert_echo(conn)
    assert b"GET /v6 HTTP/1.1\r\nHost: [::1]:%d\r\n" % server.port in server.requests[0]


def test_debug_hooks_see_raw_bytes() -> None:
    requests: list[bytes] = []
    responses: list[bytes] = []
    frame = text_frame("first")
    with raw_server(
        lambda request, sock: sock.sendall(response_101(request, "X-A: 1\r\n") + frame)
    ) as server:
        conn, _ = dial(
            server.url,
            on_request_bytes=requests.append,
            on_response_bytes=lambda view: responses.append(bytes(view)),
        )
        conn.close()
    assert requests == server.requests
    # The response head only: the frame behind it is not part of it.
    assert responses == [response_101(server.requests[0], "X-A: 1\r\n")]


def test_debug_dialer() -> None:
    requests: list[bytes] = []
    responses: list[bytes] = []
    base = Dialer(subprotocols=["chat"], headers={"Origin": "https://a.test"})
    debug = wsio.DebugDialer(
        base, on_request=requests.append, on_response=lambda raw: responses.append(bytes(raw))
    )
    with raw_server(reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!")) as server:
        with pytest.raises(InvalidStatusError):
            debug.dial(server.url)
        with pytest.raises(InvalidStatusError):
            debug.upgrade(socket.create_connection(("127.0.0.1", server.port)), server.url)
    assert requests == server.requests
    assert b"Origin: https://a.test\r\n" in requests[0]
    assert responses == [b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!"] * 2
    assert base.on_request_bytes is None  # the Dialer given is not changed


def test_on_header_sees_other_headers_only() -> None:
    seen: list[tuple[bytes, bytes]] = []
    extra = "Server: raw\r\nSet-Cookie: id=1\r\nSec-WebSocket-Protocol: chat\r\nX-Empty:\r\n"
    with raw_server(ok_then_echo(extra)) as server:
        conn, handshake = dial(
            server.url,
            subprotocols=["chat"],
            on_header=lambda name, value: seen.append((bytes(name), bytes(value))),
        )
        conn.close()
    assert seen == [(b"Server", b"raw"), (b"Set-Cookie", b"id=1"), (b"X-Empty", b"")]
    assert handshake.subprotocol == "chat"


def test_on_header_error_aborts_and_closes() -> None:
    def refuse(name: memoryview, value: memoryview) -> None:
        if bytes(name) == b"Server":
            raise RuntimeError("not this server")

    with raw_server(ok_then_echo("Server: raw\r\n")) as server:
        with pytest.raises(RuntimeError, match="not this server"):
            dial(server.url, on_header=refuse)
        assert server.closed.wait(10)


def test_on_status_error_hook() -> None:
    calls: list[tuple[int, str, bytes]] = []
    body = b"<h1>Not Found</h1>"
    response = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    with (
        raw_server(lambda request, sock: sock.sendall(response)) as server,
        pytest.raises(InvalidStatusError) as info,
    ):
        dial(
            server.url,
            on_status_error=lambda status, reason, raw: calls.append((status, reason, bytes(raw))),
        )
    assert calls == [(404, "Not Found", response)]
    assert info.value.body == body


# == tests: frames that arrive with the 101 ===============================================


def test_frame_in_the_same_segment_as_the_101() -> None:
    frame = text_frame("right behind the head")

    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(response_101(request) + frame)
        echo_frames(sock)

    with raw_server(respond) as server:
        conn, _ = dial(server.url)
        with conn:
            assert conn.pending == len(frame)
            first = wsio.read_frame(conn)
            assert bytes(first.payload) == b"right behind the head"
            assert conn.pending == 0
            assert_echo(conn)


def test_frame_split_between_read_ahead_and_socket() -> None:
    frame = text_frame("split")
    go = threading.Event()

    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(response_101(request) + frame[:3])
        go.wait(10)
        sock.sendall(frame[3:])
        echo_frames(sock)

    with raw_server(respond) as server:
        conn, _ = dial(server.url)
        with conn:
            assert conn.pending == 3
            go.set()
            assert bytes(wsio.read_frame(conn).payload) == b"split"
            assert_echo(conn)


def test_101_and_frames_one_byte_at_a_time() -> None:
    frames = text_frame("one") + text_frame("two")

    def respond(request: bytes, sock: socket.socket) -> None:
        for byte in response_101(request, "X-Padding: " + "p" * 50 + "\r\n") + frames:
            sock.sendall(bytes([byte]))
        echo_frames(sock)

    with raw_server(respond) as server:
        conn, _ = dial(server.url)
        with conn:
            assert bytes(wsio.read_frame(conn).payload) == b"one"
            assert bytes(wsio.read_frame(conn).payload) == b"two"
            assert_echo(conn)


def test_many_frames_behind_the_head_fill_the_buffer() -> None:
    frames = b"".join(text_frame(f"message {i}") for i in range(500))

    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(response_101(request) + frames)
        echo_frames(sock)

    with raw_server(respond) as server:
        conn, _ = dial(server.url, max_head_size=1024)
        with conn:
            for i in range(500):
                assert bytes(wsio.read_frame(conn).payload) == f"message {i}".encode()


# == tests: bad responses ===================================================================


def reply(data: bytes | Callable[[bytes], bytes]) -> Respond:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(data(request) if callable(data) else data)

    return respond


def with_101(extra: str = "", **kwargs: Any) -> Callable[[bytes], bytes]:
    return lambda request: response_101(request, extra, **kwargs)


def head_without(name: str, extra: str = "") -> Callable[[bytes], bytes]:
    def build(request: bytes) -> bytes:
        lines = response_101(request, extra).split(b"\r\n")
        return b"\r\n".join(line for line in lines if not line.startswith(name.encode()))

    return build


def replaced(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    return lambda request: response_101(request).replace(old, new, 1)


def version(new: bytes) -> Callable[[bytes], bytes]:
    return lambda request: response_101(request).replace(b"HTTP/1.1", new)


def accept_line(request: bytes) -> str:
    return f"Sec-WebSocket-Accept: {accept_key(request_key(request))}\r\n"


# RFC 6455 §1.3: the accept value for the sample key "dGhlIHNhbXBsZSBub25jZQ==".
RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def bad(name: str, error: type, response: Any, **options: Any) -> Any:
    return pytest.param(response, options, error, id=name)


PROTOCOL = "Sec-WebSocket-Protocol: "
EXTENSIONS = "Sec-WebSocket-Extensions: "
FORBIDDEN = b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nno way"

BAD_RESPONSES = [
    # RFC 6455 §4.1: a status other than 101 is handled "per HTTP procedures".
    bad("403 with a body", InvalidStatusError, FORBIDDEN),
    bad("200", InvalidStatusError, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    bad("redirect", InvalidStatusError, b"HTTP/1.1 302 Found\r\nLocation: /else\r\n\r\n"),
    bad("HTTP/1.0 404", InvalidStatusError, b"HTTP/1.0 404 Not Found\r\n\r\n"),
    bad("426", InvalidStatusError, b"HTTP/1.1 426 No\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    # Upgrade, Connection, Sec-WebSocket-Accept.
    bad("no Upgrade", InvalidUpgradeError, head_without("Upgrade")),
    bad("Upgrade: h2c", InvalidUpgradeError, replaced(b"websocket", b"h2c")),
    bad("Upgrade twice", InvalidUpgradeError, with_101("Upgrade: websocket\r\n")),
    bad("Upgrade list", InvalidUpgradeError, replaced(b"websocket", b"websocket, h2c")),
    bad("no Connection", InvalidConnectionError, head_without("Connection")),
    bad("Connection: close", InvalidConnectionError, replaced(b"n: Upgrade", b"n: close")),
    bad("Connection: upgraded", InvalidConnectionError, replaced(b"Upgrade\r", b"upgraded\r")),
    bad("no Accept", InvalidAcceptError, head_without("Sec-WebSocket-Accept")),
    bad("wrong Accept", InvalidAcceptError, with_101(accept="x" * 28)),
    bad("Accept of the RFC's key", InvalidAcceptError, with_101(accept=RFC_ACCEPT)),
    bad("Accept twice", InvalidAcceptError, lambda r: response_101(r, accept_line(r))),
    # Subprotocols and extensions that were not offered.
    bad("subprotocol not offered", UnexpectedSubprotocolError, with_101(PROTOCOL + "chat\r\n")),
    bad(
        "other subprotocol",
        UnexpectedSubprotocolError,
        with_101(PROTOCOL + "chat\r\n"),
        subprotocols=["superchat"],
    ),
    bad(
        "subprotocol in another case",
        UnexpectedSubprotocolError,
        with_101(PROTOCOL + "Chat\r\n"),
        subprotocols=["chat"],
    ),
    bad(
        "two subprotocols",
        UnexpectedSubprotocolError,
        with_101(PROTOCOL + "chat, v2\r\n"),
        subprotocols=["chat", "v2"],
    ),
    bad(
        "subprotocol header twice",
        UnexpectedSubprotocolError,
        with_101(f"{PROTOCOL}chat\r\n{PROTOCOL}chat\r\n"),
        subprotocols=["chat"],
    ),
    bad(
        "extension not offered",
        UnexpectedExtensionError,
        with_101(EXTENSIONS + "permessage-deflate\r\n"),
    ),
    bad(
        "other extension",
        UnexpectedExtensionError,
        with_101(EXTENSIONS + "x-webkit-deflate-frame\r\n"),
        extensions=[DEFLATE],
    ),
    bad(
        "malformed extensions",
        MalformedResponseError,
        with_101(EXTENSIONS + "permessage-deflate; =\r\n"),
        extensions=[DEFLATE],
    ),
    # Not HTTP/1.1, not HTTP at all, or over the limits.
    bad("HTTP/1.0 101", MalformedResponseError, version(b"HTTP/1.0")),
    bad("HTTP/2.0 101", MalformedResponseError, version(b"HTTP/2.0")),
    bad("garbage", MalformedResponseError, b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
    bad("binary garbage", MalformedResponseError, bytes(range(256)) * 4),
    bad("no status code", MalformedResponseError, b"HTTP/1.1 Switching Protocols\r\n\r\n"),
    bad("obs-fold", MalformedResponseError, with_101("X-A: 1\r\n  folded\r\n")),
    bad("bad header name", MalformedResponseError, with_101("X A: 1\r\n")),
    bad("NUL in a value", MalformedResponseError, with_101("X-A: a\x00b\r\n")),
    bad("too many headers", MalformedResponseError, with_101("X-A: 1\r\n" * 200)),
    bad("line too long", MalformedResponseError, with_101("X-A: " + "a" * 9000 + "\r\n")),
    bad("head too large", MalformedResponseError, with_101(("X: " + "a" * 1000 + "\r\n") * 100)),
    # The end of the stream before the head ends.
    bad(
        "closed mid-head",
        wsio.IncompleteHandshakeError,
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: w",
    ),
    bad("closed at once", wsio.IncompleteHandshakeError, b""),
]


@pytest.mark.parametrize(("response", "options", "error"), BAD_RESPONSES)
def test_bad_response(
    response: Callable[[bytes], bytes] | bytes, options: dict[str, Any], error: type
) -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(response(request) if callable(response) else response)
        sock.shutdown(socket.SHUT_WR)

    with raw_server(respond) as server:
        with pytest.raises(error) as info:
            dial(server.url, **options)
        # The socket is closed on every error: the server sees the end of the stream.
        assert server.closed.wait(10)
    # Every failure is a HandshakeError; an early end of stream is also an EOFError.
    assert isinstance(info.value, wsio.HandshakeError)


def test_status_error_details() -> None:
    body = b"x" * 100
    response = (
        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 100\r\n\r\n"
        + body
    )
    with raw_server(reply(response)) as server, pytest.raises(InvalidStatusError) as info:
        dial(server.url)
    error = info.value
    assert (error.status, error.reason, error.body) == (401, "Unauthorized", body)
    assert error.headers == [("WWW-Authenticate", "Basic"), ("Content-Length", "100")]
    assert "401 Unauthorized" in str(error)


def test_status_error_body_is_bounded() -> None:
    body = b"y" * 200_000

    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body))
        with contextlib.suppress(OSError):
            sock.sendall(body)

    with raw_server(respond) as server, pytest.raises(InvalidStatusError) as info:
        dial(server.url, max_body_size=1000)
    assert info.value.body == body[:1000]


def test_status_error_body_shorter_than_announced() -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 50\r\n\r\nonly this")
        sock.shutdown(socket.SHUT_WR)

    with raw_server(respond) as server, pytest.raises(InvalidStatusError) as info:
        dial(server.url)
    assert info.value.body == b"only this"


def test_status_error_body_without_length_is_what_came_with_the_head() -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 400 Bad\r\n\r\nbad request")  # and keeps the connection

    with raw_server(respond) as server, pytest.raises(InvalidStatusError) as info:
        dial(server.url, timeout=30)
    assert info.value.body == b"bad request"


def test_connection_list_with_upgrade_is_accepted() -> None:
    with raw_server(
        reply(replaced(b"Connection: Upgrade", b"Connection: keep-alive, UPGRADE"))
    ) as server:
        conn, _ = dial(server.url)
        conn.close()


def test_header_names_and_websocket_value_any_case() -> None:
    def build(request: bytes) -> bytes:
        return (
            "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nCONNECTION: upgrade\r\n"
            f"sec-websocket-accept: {accept_key(request_key(request))}\r\n\r\n"
        ).encode()

    with raw_server(reply(build)) as server:
        conn, _ = dial(server.url)
        conn.close()


def test_never_ending_headers_are_bounded() -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
        with contextlib.suppress(OSError):
            while True:
                sock.sendall(b"X-Forever: and ever and ever\r\n" * 100)

    with raw_server(respond) as server:
        with pytest.raises(MalformedResponseError, match="header"):
            dial(server.url)
        assert server.closed.wait(10)
    with raw_server(respond) as server:
        with pytest.raises(MalformedResponseError, match="larger than"):
            dial(server.url, max_headers=100_000)
        assert server.closed.wait(10)


def test_never_ending_line_is_bounded() -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(b"HTTP/1.1 101 ")
            while True:
                sock.sendall(b"S" * 4096)

    with raw_server(respond) as server:
        with pytest.raises(MalformedResponseError, match="longer than"):
            dial(server.url)
        assert server.closed.wait(10)


def test_server_that_never_answers_times_out() -> None:
    with raw_server(lambda request, sock: None) as server:
        with pytest.raises(HandshakeTimeoutError) as info:
            dial(server.url, timeout=0.3)
        assert server.closed.wait(10)
    assert isinstance(info.value, TimeoutError)


def test_slow_drip_cannot_outlast_the_timeout() -> None:
    stop = threading.Event()

    def respond(request: bytes, sock: socket.socket) -> None:
        # A byte at a time, each well within any per-read timeout: only a deadline for
        # the whole handshake ends this.
        for byte in b"HTTP/1.1 101 Switching Protocols\r\n" + b"X: y\r\n" * 1000:
            if stop.wait(0.02):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return

    with raw_server(respond) as server:
        with pytest.raises(HandshakeTimeoutError):
            dial(server.url, timeout=0.5)
        stop.set()
        assert server.closed.wait(10)


def test_tls_server_that_never_answers_times_out() -> None:
    # A TCP server that never speaks TLS: the TLS handshake is what times out.
    with raw_server(lambda request, sock: None) as server, pytest.raises(HandshakeTimeoutError):
        dial(f"wss://127.0.0.1:{server.port}/", timeout=0.3)


def test_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        dial(f"ws://127.0.0.1:{port}/")


# == tests: sockets, factories, hooks ====================================================


def test_sock_option_uses_a_connected_socket() -> None:
    with websockets_sync_server(compression=None) as (port, seen):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.settimeout(7.0)
        conn, _ = dial("ws://service.test/", sock=sock)
        with conn:
            assert conn.socket is sock
            assert sock.gettimeout() == 7.0  # restored after the handshake
            assert_echo(conn)
    assert seen.header("Host") == "service.test"


def test_socket_left_blocking_after_dial() -> None:
    with websockets_sync_server(compression=None) as (port, _):
        conn, _ = dial(f"ws://127.0.0.1:{port}/", timeout=5)
        with conn:
            assert conn.gettimeout() is None
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_create_connection_factory() -> None:
    calls: list[tuple[tuple[str, int], float | None]] = []

    def factory(address: tuple[str, int], timeout: float | None) -> socket.socket:
        calls.append((address, timeout))
        return socket.create_connection(("127.0.0.1", real_port), timeout)

    with websockets_sync_server(compression=None) as (real_port, _):
        conn, _ = dial("ws://named.test:1234/", create_connection=factory, timeout=5)
        with conn:
            assert_echo(conn)
    assert calls[0][0] == ("named.test", 1234)
    assert calls[0][1] is not None and 0 < calls[0][1] <= 5


class CountingSocket:
    """A socket wrapper that counts bytes, like a wrap_socket hook would return."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sent = 0
        self.received = 0

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        n = self.sock.recv_into(buffer, nbytes, flags)
        self.received += n
        return n

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = self.sock.recv(bufsize, flags)
        self.received += len(data)
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        n = self.sock.send(data, flags)
        self.sent += n
        return n

    def sendall(self, data: Any, flags: int = 0) -> None:
        self.sock.sendall(data, flags)
        self.sent += len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_wrap_socket_hook_after_tls(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    wrapped: list[CountingSocket] = []

    def wrap(sock: socket.socket) -> CountingSocket:
        assert isinstance(sock, ssl.SSLSocket)  # after TLS
        wrapped.append(CountingSocket(sock))
        return wrapped[0]

    with websockets_sync_server(ssl_context=server_ssl, compression=None) as (port, _):
        conn, _ = dial(f"wss://localhost:{port}/", ssl=client_ssl, wrap_socket=wrap)
        with conn:
            assert conn.socket is wrapped[0]
            assert_echo(conn)
    assert wrapped[0].sent > 100
    assert wrapped[0].received > 100


def test_upgrade_on_an_existing_stream() -> None:
    with websockets_sync_server(compression=None) as (port, seen):
        sock = socket.create_connection(("127.0.0.1", port))
        conn, handshake = Dialer(subprotocols=["x"]).upgrade(sock, "ws://upgraded.test/path")
        with conn:
            assert handshake.subprotocol is None
            assert_echo(conn)
    assert seen.path == "/path"


def test_upgrade_closes_the_stream_on_error() -> None:
    with raw_server(reply(b"HTTP/1.1 404 Not Found\r\n\r\n")) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        with pytest.raises(InvalidStatusError):
            Dialer().upgrade(sock, server.url)
        assert sock.fileno() == -1


def test_dialer_is_reusable_and_shareable() -> None:
    dialer = Dialer(subprotocols=["chat"], timeout=5)
    with websockets_sync_server(subprotocols=["chat"], compression=None) as (port, _):
        results: list[str | None] = []

        def one() -> None:
            conn, handshake = dialer.dial(f"ws://127.0.0.1:{port}/")
            with conn:
                assert_echo(conn)
            results.append(handshake.subprotocol)

        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == ["chat"] * 4


# == tests: proxies ========================================================================


def test_explicit_proxy() -> None:
    with (
        websockets_sync_server(compression=None) as (port, seen),
        connect_proxy(("127.0.0.1", port)) as proxy,
    ):
        conn, _ = dial("ws://behind.proxy.test:8080/p", proxy=proxy.url)
        with conn:
            assert_echo(conn)
    assert proxy.targets == ["behind.proxy.test:8080"]
    assert seen.header("Host") == "behind.proxy.test:8080"


def test_explicit_proxy_applies_to_loopback_too() -> None:
    with (
        websockets_sync_server(compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port)) as proxy,
    ):
        conn, _ = dial(f"ws://127.0.0.1:{port}/", proxy=proxy.url)
        conn.close()
    assert proxy.targets == [f"127.0.0.1:{port}"]


def test_proxy_with_credentials(server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext) -> None:
    with (
        websockets_sync_server(ssl_context=server_ssl, compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port), credentials="al:s3cr@t") as proxy,
    ):
        conn, _ = dial(
            "wss://example.test/",
            ssl=client_ssl,
            proxy=f"http://al:s3cr%40t@127.0.0.1:{proxy.port}",
        )
        with conn:
            assert_echo(conn)
    assert proxy.targets == ["example.test:443"]
    assert proxy.authorizations == ["Basic " + base64.b64encode(b"al:s3cr@t").decode()]


def test_proxy_407_is_a_clear_error() -> None:
    with (
        websockets_sync_server(compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port), credentials="a:b") as proxy,
        pytest.raises(wsio.ProxyError) as info,
    ):
        dial("ws://example.test/", proxy=proxy.url)
    assert info.value.status == 407
    assert ("Proxy-Authenticate", 'Basic realm="test"') in info.value.headers
    assert str(info.value) == (
        f"proxy 127.0.0.1:{proxy.port} answered 407 Proxy Authentication Required"
    )


def test_proxy_from_environment(
    monkeypatch: pytest.MonkeyPatch, server_ssl: ssl.SSLContext, client_ssl: ssl.SSLContext
) -> None:
    with (
        websockets_sync_server(ssl_context=server_ssl, compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port)) as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        conn, _ = dial("wss://example.test:9443/", ssl=client_ssl)
        with conn:
            assert_echo(conn)
    assert proxy.targets == ["example.test:9443"]


@pytest.mark.parametrize(
    ("variables", "url"),
    [
        ({"http_proxy": "{proxy}"}, "ws://example.test/"),
        ({"https_proxy": "{proxy}", "http_proxy": "http://127.0.0.1:9"}, "ws://example.test/"),
        ({"ALL_PROXY": "{proxy}"}, "ws://example.test/"),
        ({"wss_proxy": "{proxy}", "https_proxy": "http://127.0.0.1:9"}, "wss://example.test/"),
    ],
)
def test_environment_variables_in_order(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], url: str
) -> None:
    def hang_up(request: bytes, sock: socket.socket) -> None:
        sock.shutdown(socket.SHUT_RDWR)

    # The server behind the proxy hangs up at once: only the proxy's log matters here.
    with (
        raw_server(hang_up, read_request=False) as server,
        connect_proxy(("127.0.0.1", server.port)) as proxy,
    ):
        for name, value in variables.items():
            monkeypatch.setenv(name, value.format(proxy=proxy.url))
        with pytest.raises((UnexpectedEOFError, ssl.SSLError, ConnectionError)):
            dial(url, timeout=5)
    assert proxy.targets == [url.split("/")[2] + (":443" if url.startswith("wss") else ":80")]


def test_no_proxy_and_loopback_bypass_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    addresses: list[tuple[str, int]] = []

    def factory(address: tuple[str, int], timeout: float | None) -> socket.socket:
        addresses.append(address)
        if address == ("127.0.0.1", proxy.port):
            return socket.create_connection(address, timeout)
        return socket.create_connection(("127.0.0.1", port), timeout)

    with (
        websockets_sync_server(compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port)) as proxy,
    ):
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("no_proxy", "internal.test")
        for url in (
            "ws://internal.test/",
            f"ws://127.0.0.1:{port}/",
            f"ws://localhost:{port}/",
            "ws://[::1]:80/",
        ):
            conn, _ = dial(url, create_connection=factory)
            conn.close()
        conn, _ = dial("ws://external.test/", create_connection=factory)
        conn.close()
        # proxy=None ignores the environment.
        conn, _ = dial("ws://external.test/", create_connection=factory, proxy=None)
        conn.close()
    assert addresses == [
        ("internal.test", 80),
        ("127.0.0.1", port),
        ("localhost", port),
        ("::1", 80),
        ("127.0.0.1", proxy.port),
        ("external.test", 80),
    ]
    assert proxy.targets == ["external.test:80"]


def test_the_public_pieces_make_a_dial_through_a_proxy() -> None:
    # What wsio.aio's client does: the Target, the proxy for it, the tunnel, then a
    # handshake of its own over the socket (here the Dialer's upgrade).
    with (
        websockets_sync_server(compression=None) as (port, _),
        connect_proxy(("127.0.0.1", port), "user:secret") as proxy,
    ):
        dialer = Dialer(proxy=f"http://user:secret@127.0.0.1:{proxy.port}")
        target = parse_url("ws://backend.test:8001/chat")
        chosen = dialer.proxy_for(target)
        assert chosen is not None and chosen.address == f"127.0.0.1:{proxy.port}"
        assert chosen.authorization == "Basic " + base64.b64encode(b"user:secret").decode()
        assert Dialer(proxy=None).proxy_for(target) is None
        sock = dialer.open_socket(target)
        conn, _ = Dialer().upgrade(sock, "ws://backend.test:8001/chat")
        with conn:
            assert_echo(conn)
    assert proxy.targets == ["backend.test:8001"]
    assert encode_request_headers({"X-Trace": "1"}) == b"X-Trace: 1\r\n"
    with pytest.raises(LocalProtocolError):
        encode_request_headers({"Sec-WebSocket-Key": "x"})


def test_proxy_that_sends_bytes_after_its_answer() -> None:
    def respond(request: bytes, sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\n\r\nsurprise")

    with raw_server(respond) as server:
        with pytest.raises(MalformedResponseError, match="after its response"):
            dial("ws://example.test/", proxy=f"http://127.0.0.1:{server.port}")
        assert server.closed.wait(10)


def test_proxy_that_never_answers_times_out() -> None:
    with raw_server(lambda request, sock: None) as server, pytest.raises(HandshakeTimeoutError):
        dial("ws://example.test/", proxy=f"http://127.0.0.1:{server.port}", timeout=0.3)


@pytest.mark.parametrize(
    "proxy",
    ["socks5://127.0.0.1:1080", "https://127.0.0.1:3128", "http://", "http://h:notaport"],
)
def test_unsupported_proxies(proxy: str) -> None:
    with pytest.raises(LocalProtocolError):
        Dialer(proxy=proxy)


def test_unsupported_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("all_proxy", "socks5://127.0.0.1:1080")
    with pytest.raises(LocalProtocolError, match="environment"):
        dial("ws://example.test/")


# == tests: caller mistakes ==================================================================


@pytest.mark.parametrize(
    "url",
    [
        "http://example.test/",
        "example.test",
        "ws://example.test/#fragment",
        "ws://example.test/#",
        "ws:///path",
        "ws://example.test:99999/",
        "ws://example.test:port/",
        "ws+unix:///path",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(LocalProtocolError):
        dial(url)


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"X-A": "a\r\nX-Injected: 1"}},
        {"headers": {"X-A": "a\nb"}},
        {"headers": [("X-A", "a\x00b")]},
        {"headers": {"Bad Name": "x"}},
        {"headers": {"X\r\nY": "x"}},
        {"headers": {"Host": "example.test"}},
        {"headers": {"sec-websocket-key": "x"}},
        {"headers": {"Sec-WebSocket-Protocol": "chat"}},
        {"headers": {"Upgrade": "websocket"}},
        {"headers": "Connection: close\r\n"},
        {"headers": "X-A: 1"},
        {"host": "a\r\nb"},
        {"subprotocols": ["two words"]},
        {"subprotocols": ["a,b"]},
        {"extensions": [Option("bad name")]},
        {"extensions": [Option("x", (("p", "a\r\n"),))]},
    ],
)
def test_bad_options(options: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        Dialer(**options)


def test_on_header_views_are_released_on_return() -> None:
    kept: list[memoryview] = []
    with raw_server(ok_then_echo("X-A: 1\r\n")) as server:
        conn, _ = dial(server.url, on_header=lambda name, value: kept.append(value))
        conn.close()
    with pytest.raises(ValueError, match="released"):
        bytes(kept[0])


def test_raw_header_lines() -> None:
    with raw_server(ok_then_echo()) as server:
        conn, _ = dial(server.url, headers="Origin: https://a.test\r\nX-B: \xe9\r\n")
        conn.close()
    assert b"\r\nOrigin: https://a.test\r\nX-B: \xe9\r\n\r\n" in server.requests[0]


def test_headers_from_an_iterator_are_kept() -> None:
    headers: list[tuple[str, str | bytes]] = [("X-One", "1"), ("X-Two", b"2")]
    dialer = Dialer(headers=iter(headers))
    with raw_server(ok_then_echo()) as server:
        for each in (dialer, dialer, dataclasses.replace(dialer, timeout=5)):
            conn, _ = each.dial(server.url)
            conn.close()
    for request in server.requests:
        assert b"\r\nX-One: 1\r\nX-Two: 2\r\n" in request


# == the example ============================================================================


def load_example(name: str) -> Any:
    path = os.path.join(os.path.dirname(__file__), "..", "examples", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_dial_client(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("dial_client")
    with websockets_sync_server(subprotocols=["chat"], compression=None) as (port, seen):
        url = f"ws://127.0.0.1:{port}/room"
        code = example.main(
            [url, "-p", "chat", "-H", "Origin: https://a.test", "--debug", "hi", "there"]
        )
    assert code == 0
    out, err = capsys.readouterr()
    assert out == "hi\nthere\n"
    assert "> GET /room HTTP/1.1" in err
    assert "< HTTP/1.1 101 Switching Protocols" in err
    assert seen.header("Origin") == "https://a.test"
    assert seen.subprotocol == "chat"


def test_example_dial_client_refused(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("dial_client")
    with aiohttp_server() as (port, _):
        code = example.main([f"ws://127.0.0.1:{port}/forbidden", "hi"])
    assert code == 1
    assert "refused: 403 Forbidden: b'go away'" in capsys.readouterr().err
