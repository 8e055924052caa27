"""``python -m wsio serve`` under attack (issue 8, items 1 and 8), as a real process.

Each test does what an attacker or a broken client does, with the server's resources
limited where that is the attack, and asserts what an operator relies on: the server
still answers a new client, dead peers are closed, SIGINT ends it with 1001 sent.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
from collections.abc import Callable, Iterator

import pytest
from _hostile_servers import (
    TIMEOUT,
    ServerProcess,
    answers_again,
    close_all,
    echo_once,
    handshake_request,
    hold_tcp,
    raw_upgrade,
    serve,
)
from websockets.exceptions import ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

import wsio

MiB = 2**20


@pytest.fixture
def start() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def run(argv: list[str], **limits: int) -> ServerProcess:
        server = ServerProcess(argv, **limits)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


def read_close_code(sock: socket.socket) -> int:
    """Read frames until a Close frame; return its code (pings before it are skipped)."""
    while True:
        frame = wsio.read_frame(sock)
        if frame.header.opcode == wsio.OpCode.CLOSE:
            return int(struct.unpack("!H", frame.payload[:2])[0])


# -- item 1: out of file descriptors, out of threads -----------------------------------


def test_out_of_file_descriptors_pauses_accepting_and_recovers(
    start: Callable[..., ServerProcess],
) -> None:
    # 64 descriptors: ~100 idle TCP connections exhaust them; accept() gets EMFILE.
    server = start(serve("--handshake-timeout", "60"), nofile=64)
    held = hold_tcp(server.port, 100)
    try:
        server.wait_for_stderr("EMFILE: pausing new connections")
        assert server.alive()
        # Full and backing off, it does not spin: far less than a core while it waits.
        before = server.cpu_seconds()
        held[0].settimeout(3.0)
        with pytest.raises(TimeoutError):
            held[0].recv(1)  # the connections it has are kept, not dropped
        assert server.cpu_seconds() - before < 0.5
        assert server.stderr().count("pausing new connections") == 1  # once an episode
    finally:
        close_all(held)
    answers_again(lambda: echo_once(server.url))
    assert server.alive()
    assert "accepting again" in server.stderr()
    assert "Traceback" not in server.stderr()


def test_out_of_threads_pauses_accepting_and_recovers(
    start: Callable[..., ServerProcess],
) -> None:
    # The address space a started server needs, plus room for a few thread stacks (and
    # malloc arenas): thread creation then fails with "can't start new thread".
    probe = start(serve())
    baseline = probe.status_kib("VmSize") * 1024
    probe.stop()
    server = start(serve("--handshake-timeout", "60"), address_space=baseline + 160 * MiB)
    clients: list[ClientConnection] = []
    refused = 0
    with contextlib.ExitStack() as stack:
        for _ in range(100):
            try:
                clients.append(stack.enter_context(connect(server.url, open_timeout=TIMEOUT)))
            except Exception:  # noqa: PERF203 (the server had no thread to give)
                refused += 1
                if refused == 3:
                    break
        assert refused, "the thread limit was never reached"
        server.wait_for_stderr("starting a thread failed")
        assert server.alive()
        for ws in clients:  # the connections it has are still served
            ws.send("kept")
            assert ws.recv(TIMEOUT) == "kept"
    answers_again(lambda: echo_once(server.url))
    assert server.alive()
    assert server.stderr().count("starting a thread failed") <= refused


# -- item 8: keepalive, write timeout, max connections, shutdown -------------------------


def test_a_silent_peer_is_pinged_then_closed_with_1011(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(serve("--ping-interval", "1", "--ping-timeout", "1", "--write-timeout", "1"))
    sock = raw_upgrade(server.port)  # never answers a ping
    with sock:
        first = wsio.read_frame(sock)
        assert first.header.opcode == wsio.OpCode.PING
        assert read_close_code(sock) == 1011
        assert sock.recv(1) == b""  # then the connection is dropped
    answers_again(lambda: echo_once(server.url))


def test_a_peer_that_answers_pings_stays_connected(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(serve("--ping-interval", "0.5", "--ping-timeout", "1", "--write-timeout", "1"))
    # websockets answers pings from its own thread; its own pings are off.
    with connect(server.url, open_timeout=TIMEOUT, ping_interval=None) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(4.0)  # several ping intervals of silence from us
        ws.send("alive")
        assert ws.recv(TIMEOUT) == "alive"


def test_a_peer_that_never_reads_is_dropped(start: Callable[..., ServerProcess]) -> None:
    server = start(serve("--write-timeout", "1", "--max-message-size", str(16 * MiB)))
    sock = raw_upgrade(server.port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frame = wsio.compile_frame(wsio.mask_frame(wsio.new_binary_frame(bytes(MiB))))
    # Echoes pile up unread until the server's write blocks; it must give up on us.
    with sock, pytest.raises(OSError):
        for _ in range(200):
            sock.sendall(frame)
    server.wait_for_stderr(r"dropped after \d+ messages: TimeoutError")
    answers_again(lambda: echo_once(server.url))


def test_over_max_connections_is_refused_with_503_then_accepted_again(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(serve("--max-connections", "3"))
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect(server.url, open_timeout=TIMEOUT)) for _ in range(3)]
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as extra:
            extra.sendall(handshake_request(server.port))
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        clients[0].close()
        answers_again(lambda: echo_once(server.url))


def test_sigint_closes_every_connection_with_1001_and_exits(
    start: Callable[..., ServerProcess],
) -> None:
    server = start(serve("--write-timeout", "30"))
    stack = contextlib.ExitStack()
    clients = [stack.enter_context(connect(server.url, open_timeout=TIMEOUT)) for _ in range(5)]
    for ws in clients:
        ws.send("hello")
        assert ws.recv(TIMEOUT) == "hello"
    # And one peer that never reads, its connection thread stuck writing to it.
    stuck = raw_upgrade(server.port)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(wsio.compile_frame(wsio.mask_frame(wsio.new_binary_frame(bytes(4 * MiB)))))
    server.wait_for_stderr("connected")
    server.proc.send_signal(signal.SIGINT)
    for ws in clients:
        with pytest.raises(ConnectionClosedOK):
            ws.recv(TIMEOUT)
        assert ws.close_code == 1001
    assert server.proc.wait(TIMEOUT) == 0
    stuck.close()
    stack.close()


def test_origins_refuse_a_foreign_page_with_403(start: Callable[..., ServerProcess]) -> None:
    # Cross-site WebSocket hijacking: a page on another site opens the connection.
    server = start(serve("--origins", "https://app.example", "none"))
    for origin in ["https://evil.example", "null"]:
        with pytest.raises(InvalidStatus) as refused:
            connect(server.url, open_timeout=TIMEOUT, origin=Origin(origin))
        assert refused.value.response.status_code == 403
    with connect(server.url, open_timeout=TIMEOUT, origin=Origin("https://app.example")) as ws:
        ws.send("same site")
        assert ws.recv(TIMEOUT) == "same site"
    echo_once(server.url)  # no Origin header at all: a non-browser client, admitted
