"""wsio.sync's promises under stress: keepalive with a peer that stops answering, close
timeouts, slow readers, concurrent senders checked on the wire, one reader at a time,
reconnection, TLS and Unix sockets. Peers are real sockets on loopback; the silent ones
are wsio's handshake followed by nothing."""

from __future__ import annotations

import base64
import contextlib
import gc
import itertools
import os
import select
import socket
import ssl
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
import trustme
import websockets.sync.client
from hypothesis import HealthCheck, given, settings, strategies as st

import wsio
from wsio.protocol import BinaryMessage, ClientProtocol, Close, ServerProtocol, TextMessage
from wsio.sync import Backoff, Connection, connect, serve

TIMEOUT = 10.0
# Bounds on hangs only: generous, never a measure of speed.
HANG = 30.0


def echo(ws: Connection) -> None:
    for message in ws:
        ws.send(message)


@contextmanager
def wsio_server(
    handler: Callable[[Connection], object] = echo, **options: Any
) -> Iterator[wsio.sync.Server]:
    server = serve(handler, "127.0.0.1", options.pop("port", 0), **options)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(HANG)
        assert not thread.is_alive()


def url_of(server: wsio.sync.Server) -> str:
    return f"ws://127.0.0.1:{server.socket.getsockname()[1]}"


@contextmanager
def silent_server() -> Iterator[tuple[str, list[socket.socket]]]:
    """Upgrades each connection (wsio.Upgrader), then never reads or writes again."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def run() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            wsio.Upgrader().upgrade(sock)
            held.append(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}", held
    finally:
        # Woken from accept() (a close alone does not wake it on Linux) and joined
        # before the held sockets are closed: one it was upgrading is closed too.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(HANG)
        for sock in held:
            sock.close()


def read_until_close(sock: Any, *, client: bool = False) -> tuple[list[Any], Close | None]:
    """Every event a raw peer reads until the Close frame or end of stream (wsio's own
    parser on the bytes: a frame of one message inside another's fails it with 1002)."""
    proto = (ClientProtocol if client else ServerProtocol)(max_message_size=None)
    events: list[Any] = []
    sock.settimeout(HANG)
    while True:
        data = sock.recv(65536)
        if not data:
            proto.receive_eof()
        else:
            proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Close):
                assert proto.error is None, proto.error
                for buffer in proto.data_to_send():
                    sock.sendall(buffer)
                return events, event
            events.append(event)
        if not data:
            assert proto.error is None, proto.error
            return events, None


# -- keepalive ------------------------------------------------------------------------


def test_keepalive_fails_a_client_whose_server_stops_answering() -> None:
    with silent_server() as (url, _):
        ws = connect(url, ping_interval=0.1, ping_timeout=0.2, close_timeout=1.0).open()
        with pytest.raises(wsio.ConnectionClosedError) as info:
            ws.recv(HANG)  # blocked in recv: the keepalive thread still acts
        assert info.value.code == 1006
        assert info.value.sent_code == 1011
        assert info.value.sent_reason == "keepalive ping timeout"


def test_keepalive_fails_a_server_connection_without_anyone_reading() -> None:
    closed: list[Any] = []
    done = threading.Event()

    def idle(ws: Connection) -> None:
        # Never reads: the keepalive must work whatever the handler does.
        ws._closed.wait(HANG)
        closed.append(ws.protocol.close_sent)
        done.set()

    with wsio_server(idle, ping_interval=0.1, ping_timeout=0.2) as server:
        conn, _ = wsio.dial(url_of(server), proxy=None)
        # The client reads but never answers: it sees a ping, then the 1011 Close.
        events, close = read_until_close(conn, client=True)
        assert done.wait(HANG)
        conn.close()
    assert any(type(event).__name__ == "Ping" for event in events)
    assert close is not None and close.code == 1011
    assert closed[0].code == 1011


def test_keepalive_takes_one_thread_for_every_connection() -> None:
    # A thread per connection for its pings ran `wsio serve` out of address space
    # (a stack and a malloc arena each): one thread serves them all, both sides.
    with wsio_server(ping_interval=0.05, ping_timeout=HANG) as server:
        clients = [connect(url_of(server), ping_interval=0.05).open() for _ in range(20)]
        try:
            # Every keepalive works though nobody reads: the keepalive thread reads
            # each connection's pongs (latency is set by the first).
            for ws in clients:
                give_up = time.monotonic() + HANG
                while ws.latency == 0.0 and time.monotonic() < give_up:
                    time.sleep(0.01)
                assert ws.latency > 0.0
            names = [thread.name for thread in threading.enumerate()]
            assert names.count("wsio-keepalive") == 1
        finally:
            for ws in clients:
                ws.close()


def test_keepalive_keeps_a_send_only_client_alive() -> None:
    # aiohttp #4153 / websockets #1620: a client that only sends must not be dropped
    # while the peer answers pings.
    received: list[Any] = []

    def sink(ws: Connection) -> None:
        received.extend(ws)

    with wsio_server(sink) as server:
        with connect(url_of(server), ping_interval=0.05, ping_timeout=0.5) as ws:
            for i in range(20):
                ws.send(str(i))
                time.sleep(0.03)
            assert ws.latency > 0.0  # pongs were read though the application never reads
        assert ws.close_code == 1000
    assert received == [str(i) for i in range(20)]


# -- closing --------------------------------------------------------------------------


def test_close_gives_up_after_close_timeout_when_the_peer_never_answers() -> None:
    with silent_server() as (url, _):
        ws = connect(url, ping_interval=None, close_timeout=0.3).open()
        started = time.monotonic()
        ws.close()
        assert time.monotonic() - started < HANG
        assert ws.close_code == 1006
        with pytest.raises(wsio.ConnectionClosedError):
            ws.send("late")


def test_close_while_another_thread_receives() -> None:
    with wsio_server() as server, connect(url_of(server)) as ws:
        errors: list[BaseException] = []

        def receive() -> None:
            try:
                ws.recv(HANG)
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=receive)
        thread.start()
        time.sleep(0.05)
        ws.close(1000, "bye")
        thread.join(HANG)
        assert isinstance(errors[0], wsio.ConnectionClosedOK)
        assert errors[0].sent_code == 1000


def test_the_peers_close_code_is_echoed_and_its_reason_reported() -> None:
    seen: list[tuple[int | None, str | None]] = []
    done = threading.Event()

    def handler(ws: Connection) -> None:
        with pytest.raises(wsio.ConnectionClosedError):
            ws.recv(HANG)
        seen.append((ws.close_code, ws.close_reason))
        done.set()

    with wsio_server(handler) as server:
        sock, _ = wsio.dial(url_of(server), proxy=None)
        with sock:
            client = ClientProtocol()
            client.send_close(4001, "client bye")
            for data in client.data_to_send():
                sock.sendall(data)
            _, close = read_until_close(sock, client=True)
        # The Close may come with the handshake and be answered before the handler
        # starts: shutting down before it does would leave it uncalled.
        assert done.wait(HANG)
    # RFC 6455 §5.5.1: "the endpoint typically echos the status code it received".
    assert close is not None and close.code == 4001
    assert seen == [(4001, "client bye")]


def test_handler_exception_closes_with_1011() -> None:
    def broken(ws: Connection) -> None:
        ws.recv()
        raise RuntimeError("bug")

    with wsio_server(broken) as server, websockets.sync.client.connect(url_of(server)) as ws:
        ws.send("x")
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            ws.recv(TIMEOUT)
    assert ws.close_code == 1011


def test_recv_timeout_leaves_the_connection_usable() -> None:
    with wsio_server() as server, connect(url_of(server)) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(0.05)
        ws.send("still here")
        assert ws.recv(TIMEOUT) == "still here"


# -- one reader, many senders ---------------------------------------------------------


def test_second_reader_gets_concurrency_error() -> None:
    with wsio_server() as server, connect(url_of(server)) as ws:
        got: list[Any] = []
        thread = threading.Thread(target=lambda: got.append(ws.recv(HANG)))
        thread.start()
        while not ws._wire.has_reader():  # the other thread is receiving
            time.sleep(0.01)
        with pytest.raises(wsio.ConcurrencyError):
            ws.recv(TIMEOUT)
        ws.send("wake")
        thread.join(HANG)
        assert got == ["wake"]


_message = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=5000),
    st.lists(st.text(max_size=20), min_size=1, max_size=4),
    st.lists(st.binary(max_size=20), min_size=1, max_size=4),
)


def _joined(message: Any) -> Any:
    if isinstance(message, list):
        return "".join(message) if isinstance(message[0], str) else b"".join(message)
    return message


def _tagged(sender: int, seq: int, message: Any) -> Any:
    """``message`` with who sent it first, so each sender's order can be read back."""
    tag = f"{sender}.{seq}|"
    if isinstance(message, list):
        first = tag if isinstance(message[0], str) else tag.encode()
        return [first, *message]
    return tag + message if isinstance(message, str) else tag.encode() + message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_message, max_size=12), min_size=2, max_size=5))
def test_concurrent_senders_never_interleave_on_the_wire(plan: list[list[Any]]) -> None:
    _send_concurrently(plan)


def test_concurrent_senders_of_long_messages_never_interleave_on_the_wire() -> None:
    # Compiled, a client masks a payload over 256 KiB block by block, a sendall each
    # (_Wire._send_masked): the write lock must hold across all of its blocks.
    plan = [
        [bytes([index]) * (300_000 + 7 * seq) if seq % 2 else "short" for seq in range(6)]
        for index in range(3)
    ]
    _send_concurrently(plan)


def _send_concurrently(plan: list[list[Any]]) -> None:
    """Each list of ``plan`` sent by a thread of its own on one connection at once; the
    peer must read every message whole, each thread's in its order."""
    listener = socket.create_server(("127.0.0.1", 0))
    result: list[Any] = []

    def peer() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            result.append(read_until_close(sock))

    thread = threading.Thread(target=peer)
    thread.start()
    with listener:
        _send_on_threads(plan, f"ws://127.0.0.1:{listener.getsockname()[1]}")
        thread.join(HANG)
    # The raw peer parsed every byte with wsio's parser: a frame of one message inside
    # another's would have failed it (1002) before the Close.
    events, close = result[0]
    assert close is not None and close.code == 1000
    got = [event.data for event in events if isinstance(event, (TextMessage, BinaryMessage))]
    for index, messages in enumerate(plan):
        prefix = f"{index}."
        mine = [
            m for m in got if (m if isinstance(m, str) else m.decode("latin-1")).startswith(prefix)
        ]
        assert mine == [_joined(_tagged(index, seq, m)) for seq, m in enumerate(messages)]
    assert len(got) == sum(map(len, plan))


def _send_on_threads(plan: list[list[Any]], url: str) -> None:
    ws = connect(url, compression=None).open()
    start = threading.Barrier(len(plan))

    def sender(index: int, messages: list[Any]) -> None:
        start.wait()
        for seq, message in enumerate(messages):
            ws.send(_tagged(index, seq, message))

    senders = [threading.Thread(target=sender, args=item) for item in enumerate(plan)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(HANG)
    ws.close()


# -- backpressure ---------------------------------------------------------------------


def test_slow_reader_blocks_the_sender_and_loses_nothing() -> None:
    total = 400
    sent = threading.Event()

    def flood(ws: Connection) -> None:
        for i in range(total):
            ws.send(i.to_bytes(4, "big") * 16384)  # 64 KiB each, 25 MiB in all
        sent.set()
        ws.recv()

    with (
        wsio_server(flood, compression=None) as server,
        connect(url_of(server), compression=None, ping_interval=0.05, max_queue=4) as ws,
    ):
        # Nobody reads: the keepalive thread drains at most max_queue messages, then
        # reading pauses and the server's send blocks instead of buffering.
        assert not sent.wait(0.5)
        # At most max_queue messages, plus what the read that crossed it brought in
        # (one 256 KiB read: four of these messages).
        assert len(ws._queue) <= 4 + 4
        for i in range(total):
            assert ws.recv(TIMEOUT) == i.to_bytes(4, "big") * 16384
        assert sent.wait(HANG)
        ws.send("done")


# 1 MiB: compiled, a client masks a payload over 256 KiB block by block as it sends it
# (_Wire._send_masked), a path of its own to the same bound.
@pytest.mark.parametrize("size", [65536, 1 << 20], ids=["64KiB", "1MiB"])
def test_send_to_a_peer_that_never_reads_fails_after_write_timeout(size: int) -> None:
    with silent_server() as (url, held):
        ws = connect(url, ping_interval=None, compression=None, write_timeout=0.3).open()
        with pytest.raises(wsio.ConnectionClosedError) as info:
            for _ in range(100_000):  # the kernel's buffers fill within a few MiB
                ws.send(bytes(size))
        assert info.value.code == 1006
        assert ws.close_code == 1006
        # TCP is closed: the peer reads what was buffered, then the end of the stream.
        held[0].settimeout(HANG)
        while held[0].recv(1 << 20):
            pass


# -- reconnecting ---------------------------------------------------------------------


def test_reconnect_waits_out_refusals_and_5xx() -> None:
    attempts: list[int] = []

    def on_request(uri: Any) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise wsio.RejectConnectionError("busy", status=503)

    with wsio_server(on_request=on_request) as server:
        backoff = Backoff(initial=0.01, maximum=0.05)
        seen = []
        for ws in connect(url_of(server), backoff=backoff):
            ws.send(f"attempt {len(attempts)}")
            seen.append(ws.recv(TIMEOUT))
            if len(seen) == 2:
                break
    assert seen == ["attempt 3", "attempt 4"]
    assert ws.close_code == 1000


def test_reconnect_raises_a_4xx() -> None:
    def on_request(uri: Any) -> None:
        raise wsio.RejectConnectionError("no", status=403)

    with wsio_server(on_request=on_request) as server, pytest.raises(wsio.InvalidStatusError):
        next(iter(connect(url_of(server), backoff=Backoff(initial=0.01))))


# -- transports -----------------------------------------------------------------------


def test_tls_both_ways() -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with wsio_server(ssl=server_context, ping_interval=0.05) as server:
        url = f"wss://127.0.0.1:{server.socket.getsockname()[1]}"
        with connect(url, ssl=client_context, ping_interval=0.05) as ws:
            for message in ["tls ✓", os.urandom(200000), ["a", "b"]]:
                ws.send(message)
                assert ws.recv(TIMEOUT) == _joined(message)
            assert ws.ping().wait(TIMEOUT) > 0
        assert ws.close_code == 1000
        # Verification is on: an untrusted certificate is refused.
        with pytest.raises(ssl.SSLCertVerificationError):
            connect(url, open_timeout=TIMEOUT).open()


def _tls_server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)
    return context


def _client_hello() -> bytes:
    client = ssl.create_default_context().wrap_bio(
        ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost"
    )
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def _tls_peer_stalled_mid_record(port: int) -> socket.socket:
    """A TLS client that opens a WebSocket connection, then sends the first half of the
    TLS record that carries its first frame, and stops."""
    sock = socket.create_connection(("127.0.0.1", port))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            incoming.write(sock.recv(65536))
    key = base64.b64encode(os.urandom(16)).decode()
    tls.write(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    sock.sendall(outgoing.read())
    response = b""
    while b"\r\n\r\n" not in response:
        incoming.write(sock.recv(65536))
        with contextlib.suppress(ssl.SSLWantReadError):
            response += tls.read(65536)
    assert response.startswith(b"HTTP/1.1 101")
    client = ClientProtocol()
    client.send_binary(b"x" * 1000)
    tls.write(b"".join(client.data_to_send()))
    record = outgoing.read()
    sock.sendall(record[: len(record) // 2])
    return sock


def test_keepalive_survives_a_tls_peer_that_stops_inside_a_record() -> None:
    # The keepalive thread reads connections nobody reads; a TLS read waits for a whole
    # record, so a peer that sends half of one must not hold that thread (and with it
    # every connection's keepalive): both silent connections are failed on time.
    context = _tls_server_context()
    ended: list[Any] = []
    done = threading.Event()

    def idle(ws: Connection) -> None:
        ws._closed.wait(HANG)
        ended.append(ws.protocol.close_sent)
        if len(ended) == 2:
            done.set()

    with wsio_server(idle, ssl=context, ping_interval=0.1, ping_timeout=0.3) as server:
        port = server.socket.getsockname()[1]
        client_context = ssl.create_default_context()
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        # A client that never reads nor answers a ping, then the stalled one.
        with connect(f"wss://127.0.0.1:{port}", ssl=client_context, ping_interval=None):
            stalled = _tls_peer_stalled_mid_record(port)
            try:
                assert done.wait(HANG)
            finally:
                stalled.close()
    assert [close.code for close in ended] == [1011, 1011]


def test_a_trickled_client_hello_is_cut_off_at_handshake_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hello = _client_hello()
    with (
        caplog.at_level("INFO", logger="wsio"),
        wsio_server(ssl=_tls_server_context(), handshake_timeout=0.5) as server,
        socket.create_connection(server.socket.getsockname()[:2]) as sock,
    ):
        # One byte at a time, each well within the timeout, the whole far past it: the
        # server must hang up before the ClientHello is complete.
        cut = False
        for byte in hello:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            try:
                if readable and not sock.recv(1):
                    cut = True
                    break
            except ConnectionResetError:
                # A server that closes with our bytes unread sends RST, not FIN (RFC 1122
                # 4.2.2.13): a reset is the same hang-up.
                cut = True
                break
        assert cut
    failures = [r for r in caplog.records if "handshake failed" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelname == "INFO"
    assert "TimeoutError" in failures[0].getMessage() and failures[0].exc_info is None


def test_a_tls_client_on_a_plain_port_and_a_plain_one_on_a_tls_port_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("INFO", logger="wsio"):
        with (
            wsio_server() as plain,
            socket.create_connection(plain.socket.getsockname()[:2]) as sock,
        ):
            sock.sendall(_client_hello())
            sock.settimeout(HANG)
            assert sock.recv(65536).startswith(b"HTTP/1.1 400")
        with (
            wsio_server(ssl=_tls_server_context()) as tls,
            pytest.raises((wsio.HandshakeError, OSError)),
        ):
            connect(f"ws://127.0.0.1:{tls.socket.getsockname()[1]}").open()
    failures = [r for r in caplog.records if "handshake failed" in r.getMessage()]
    assert [r.levelname for r in failures] == ["INFO", "INFO"]
    assert all(r.exc_info is None and "127.0.0.1" in r.getMessage() for r in failures)
    assert "SSLError" in failures[1].getMessage()


def test_unix_socket_and_existing_listener() -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "ws.sock")
        server = serve(echo, unix_path=path)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            with connect("ws://localhost/", unix_path=path) as ws:
                ws.send("over unix")
                assert ws.recv(TIMEOUT) == "over unix"
        finally:
            server.shutdown()
            thread.join(HANG)
    listener = socket.create_server(("127.0.0.1", 0))
    with wsio_server(sock=listener) as server, connect(url_of(server)) as ws:
        ws.send(b"given socket")
        assert ws.recv(TIMEOUT) == b"given socket"


def test_serve_closes_its_socket_when_its_options_are_refused() -> None:
    # The Upgrader's options are checked once the listening socket exists: a refusal
    # closes it (it was left to the garbage collector, whose ResourceWarning failed
    # whichever later test it happened to run in).
    for options in ({"origins": "https://app.example"}, {"nonsense": 1}, {"max_line": 1}):
        with pytest.raises((TypeError, ValueError)):
            serve(echo, "127.0.0.1", 0, **options)
    gc.collect()  # an unclosed socket is reported here (warnings are errors)


def test_options_are_checked_before_connecting() -> None:
    with pytest.raises(ValueError, match="ping_interval"):
        connect("ws://127.0.0.1:9/", ping_interval=0)
    with pytest.raises(ValueError, match="compression"):
        serve(echo, "127.0.0.1", 0, compression="gzip")
    with pytest.raises(TypeError):
        wsio.sync.Options(nonsense=1)  # type: ignore[call-arg]


# -- streaming -------------------------------------------------------------------------


@contextmanager
def raw_sender(frames: list[bytes | memoryview]) -> Iterator[str]:
    """A peer that upgrades one connection, sends ``frames`` (prebuilt, unmasked, sent
    from views: it allocates nothing per frame), then reads until the client closes."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            for frame in frames:
                sock.sendall(frame)
            read_until_close(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        thread.join(HANG)


def _header(opcode: int, length: int, fin: bool = True) -> bytes:
    # RFC 6455 §5.2, unmasked (server to client), the shortest length form.
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([first, length])
    if length < 1 << 16:
        return bytes([first, 126]) + length.to_bytes(2, "big")
    return bytes([first, 127]) + length.to_bytes(8, "big")


def test_recv_streaming_a_16_mib_message_keeps_memory_bounded() -> None:
    size = 16 << 20
    payload = memoryview(os.urandom(size))
    frames: list[bytes | memoryview] = [_header(2, size), payload]
    with raw_sender(frames) as url, connect(url, compression=None, max_message_size=None) as ws:
        tracemalloc.start()
        try:
            received = 0
            pieces = 0
            for piece in ws.recv_streaming():
                assert isinstance(piece, bytes)
                assert piece == payload[received : received + len(piece)]
                received += len(piece)
                pieces += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert received == size
        assert pieces > 16  # as it arrived, not whole
        assert peak < 4 << 20  # a few reads' worth, never the message


def test_long_messages_both_ways_whatever_their_type_and_length() -> None:
    # Over 64 KiB a message is read into its own bytes (compiled), over 256 KiB a
    # client masks and sends it a block at a time, over 1 MiB it is longer than a frame
    # taken whole: odd lengths, so that blocks start at every key offset.
    sizes = [65537, 262145, 262150, (3 << 20) + 3]
    with (
        wsio_server(compression=None, max_message_size=None) as server,
        connect(url_of(server), compression=None, max_message_size=None) as ws,
    ):
        for size in sizes:
            payload = os.urandom(size)
            for message in (payload, bytearray(payload), memoryview(payload)):
                ws.send(message)
                assert ws.recv(TIMEOUT) == payload
        text = "é" * (1 << 20)
        ws.send(text)
        assert ws.recv(TIMEOUT) == text


def test_a_clients_long_message_is_one_masked_frame_on_the_wire() -> None:
    payload = os.urandom((1 << 20) + 5)
    listener = socket.create_server(("127.0.0.1", 0))
    seen: list[Any] = []

    def run() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            seen.extend(read_until_close(sock))  # wsio's parser: masked, one frame

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        with connect(f"ws://127.0.0.1:{listener.getsockname()[1]}", compression=None) as ws:
            ws.send(payload)
            ws.send("after")
    finally:
        thread.join(HANG)
        listener.close()
    events, close = seen
    assert events == [BinaryMessage(payload), TextMessage("after")]
    assert close is not None and close.code == 1000


def test_recv_streaming_takes_over_a_message_being_read_whole() -> None:
    # recv read the header and the first bytes of a long message (compiled: into its
    # own bytes) and timed out; recv_streaming then gets what came as its first piece
    # and the rest as it arrives.
    size = 4 << 20
    payload = os.urandom(size)
    go = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            sock.sendall(_header(2, size) + payload[:100_000])
            go.wait(HANG)
            sock.sendall(payload[100_000:])
            read_until_close(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}"
        with connect(url, compression=None, max_message_size=None) as ws:
            with pytest.raises(TimeoutError):
                ws.recv(0.3)
            go.set()
            pieces = list(ws.recv_streaming())
            assert b"".join(cast("list[bytes]", pieces)) == payload  # a str raises TypeError
            assert len(pieces) > 1
            ws.send("ok")
    finally:
        go.set()
        thread.join(HANG)
        listener.close()


def test_the_keepalive_drain_leaves_a_message_still_arriving_to_recv() -> None:
    # Nobody reads, so the keepalive thread does: it reads the first fragment, then
    # stops (drained, a message would be held whole, whatever its size); the
    # application's recv_streaming gets that fragment and the rest as they come.
    first, rest = os.urandom(1000), os.urandom(1000)
    listener = socket.create_server(("127.0.0.1", 0))
    go = threading.Event()

    def run() -> None:
        sock, _ = listener.accept()
        with sock:
            wsio.Upgrader().upgrade(sock)
            sock.sendall(_header(2, len(first), fin=False) + first)
            go.wait(HANG)
            sock.sendall(_header(0, len(rest)) + rest)
            read_until_close(sock)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with connect(url, compression=None, ping_interval=0.05) as ws:
            deadline = time.monotonic() + HANG
            while not ws._wire.partial and time.monotonic() < deadline:
                time.sleep(0.01)  # until the keepalive thread has read the first fragment
            go.set()
            assert list(ws.recv_streaming()) == [first, rest]
    finally:
        listener.close()
        thread.join(HANG)


def test_recv_streaming_text_cut_inside_characters_and_fragments() -> None:
    text = "é€😀" * 5000  # 2-, 3- and 4-byte characters
    encoded = text.encode()
    cut = [0, 1, 5, 4097, len(encoded) // 2 + 1, len(encoded)]
    frames: list[bytes | memoryview] = []
    for index, (start, end) in enumerate(itertools.pairwise(cut)):
        last = end == len(encoded)
        frames.append(_header(1 if index == 0 else 0, end - start, fin=last))
        frames.append(encoded[start:end])
    frames.append(_header(2, 3) + b"abc")  # the next message is not part of the stream
    with raw_sender(frames) as url, connect(url, compression=None) as ws:
        pieces = list(ws.recv_streaming())
        assert all(isinstance(piece, str) for piece in pieces)
        assert "".join(cast("list[str]", pieces)) == text
        assert ws.recv(TIMEOUT) == b"abc"


def test_recv_streaming_takes_a_queued_message_whole_and_obeys_decode() -> None:
    with wsio_server() as server, connect(url_of(server)) as ws:
        ws.send("first")
        ws.send(b"second")
        assert ws.recv(TIMEOUT) == "first"
        assert list(ws.recv_streaming(decode=True)) == ["second"]
        ws.send("third")
        assert b"".join(ws.recv_streaming(decode=False)) == b"third"  # type: ignore[arg-type]


# -- the server's handshake -------------------------------------------------------------


def test_server_runs_every_upgrader_hook_as_given_and_reports_the_request() -> None:
    calls: list[tuple[str, ...]] = []

    def handler(ws: Connection) -> None:
        assert ws.request is not None
        ws.send(f"{ws.request.path} {ws.request.header('x-token')} {ws.subprotocol}")

    with wsio_server(
        handler,
        protocol=["chat"],
        on_request=lambda uri: calls.append(("request", bytes(uri).decode())),
        on_host=lambda host: calls.append(("host", bytes(host).decode())),
        on_header=lambda key, value: calls.append(
            ("header", bytes(key).decode(), bytes(value).decode())
        ),
    ) as server:
        url = url_of(server)
        with connect(url + "/room?x=1", subprotocols=["chat"], headers={"X-Token": "t"}) as ws:
            assert ws.recv(TIMEOUT) == "/room?x=1 t chat"
    assert calls[0] == ("request", "/room?x=1")
    assert ("host", url.removeprefix("ws://")) in calls
    assert ("header", "X-Token", "t") in calls


def test_server_refuses_past_max_connections_with_503() -> None:
    def hold(ws: Connection) -> None:
        ws.recv(HANG)

    with wsio_server(hold, max_connections=1) as server, connect(url_of(server)) as first:
        with pytest.raises(wsio.InvalidStatusError) as info:
            connect(url_of(server), open_timeout=TIMEOUT).open()
        assert info.value.status == 503
        first.send("done")


def test_server_handshake_timeout_ends_a_client_that_stops_mid_request() -> None:
    with wsio_server(handshake_timeout=0.2) as server:
        port = server.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=HANG) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and nothing more
            answer = b""
            while chunk := sock.recv(4096):  # the server ends it (408 or nothing)
                answer += chunk
            assert b"101" not in answer


def test_connect_iterates_through_refused_connections() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
    url = f"ws://127.0.0.1:{listener.getsockname()[1]}"
    attempts: list[float] = []
    server: list[wsio.sync.Server] = []

    class Counting(Backoff):
        def next(self) -> float:
            attempts.append(1)
            if len(attempts) == 2:  # the server comes up after two refusals
                listener.listen()
                server.append(serve(echo, sock=listener))
                threading.Thread(target=server[0].serve_forever, daemon=True).start()
            return 0.01

    try:
        for ws in connect(url, backoff=Counting()):
            ws.send("up")
            assert ws.recv(TIMEOUT) == "up"
            break
        assert len(attempts) == 2
    finally:
        if server:
            server[0].shutdown()
        listener.close()


# -- the connection's locks -------------------------------------------------------------


def test_the_connections_lock_behaves_as_threading_lock() -> None:
    # wsio.sync's sends and reads wait on these: held, a non-blocking acquire fails and
    # a timed one gives up; a release from another thread wakes a waiter; releasing an
    # unlocked lock is an error, as with threading.Lock.
    from wsio.sync.connection import _Lock

    lock = _Lock()
    assert not lock.locked()
    with lock:
        assert lock.locked()
        assert not lock.acquire(blocking=False)
        assert not lock.acquire(timeout=0.05)
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1.0)
    assert lock.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=HANG)))
    waiter.start()
    time.sleep(0.05)
    lock.release()  # the waiter takes it
    waiter.join(HANG)
    assert got == [True] and lock.locked()
    lock.release()


def test_a_signal_handler_runs_while_a_send_waits_for_the_lock() -> None:
    # A thread waiting to send (another send holds the connection) still gets its signal
    # handlers run: Ctrl-C ends the wait, as it would a threading.Lock's.
    import signal

    from wsio.sync.connection import _Lock

    class Interrupted(Exception):
        pass

    def handler(signum: int, frame: Any) -> None:
        raise Interrupted

    lock = _Lock()
    lock.acquire()
    previous = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Interrupted):
            lock.acquire(timeout=HANG)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        lock.release()
