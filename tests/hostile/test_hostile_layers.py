"""Attacks on the layers the other hostile tests reach only through the CLI or the
blocking examples: out of file descriptors on ``wsio.sync.serve``, ``wsio.aio.serve`` and
the callback level ``wsio.aio.create_server``, each a real process under RLIMIT_NOFILE
(DESIGN: "every accept loop survives running out of file descriptors"); the handshake fed
a byte at a time to ``wsio.sync.serve`` (reliability.md item 5); and a hostile server's
announced frame against ``wsio.sync``'s client (item 84).
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from _hostile_servers import (
    TIMEOUT,
    ServerProcess,
    answers_again,
    close_all,
    echo_once,
    example,
    handshake_request,
    hold_tcp,
    raw_upgrade,
    serve,
)

import wsio
from wsio import sync as wsio_sync


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.fixture(params=["sync_echo.py", "aio_echo.py", "aio_echo_callback.py"])
def full_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # 64 descriptors: ~60 connections exhaust them, and accept() gets EMFILE.
    argv = example(request.param, "--no-compression")
    argv[argv.index("0")] = free_port()  # these examples print the port they were given
    server = ServerProcess(argv, nofile=64)
    yield server
    server.stop()


def test_out_of_file_descriptors_keeps_serving_and_recovers(full_server: ServerProcess) -> None:
    server = full_server
    kept = raw_upgrade(server.port)  # a WebSocket connection made before the shortage
    held = hold_tcp(server.port, 100)
    try:
        before = server.cpu_seconds()
        held[0].settimeout(2.0)
        with contextlib.suppress(TimeoutError, ConnectionError):
            held[0].recv(1)  # two seconds while it is full
        assert server.cpu_seconds() - before < 0.5  # backing off, not retrying at once
        assert server.alive()
        # The connection it has is still served while accept() fails.
        kept.sendall(wsio.compile_frame(wsio.mask_frame(wsio.new_text_frame(b"kept"))))
        kept.settimeout(10.0)
        assert wsio.read_frame(kept).payload == b"kept"
    finally:
        close_all(held)
        kept.close()
    answers_again(lambda: echo_once(server.url))
    assert server.alive()
    # The shortage is logged once when it starts and once when it ends: no traceback per
    # attempt (asyncio's own accept loop reports one a second to the exception handler).
    log = server.stderr()
    assert "Traceback" not in log, log
    assert log.count("pausing new connections") == 1, log


def test_a_handshake_fed_a_byte_at_a_time_ends_at_the_deadline_on_sync_serve() -> None:
    # wsio.sync.serve (the CLI's server) with a 1 s handshake deadline; each byte is
    # well within any per-read timeout, the whole request far past the deadline.
    server = ServerProcess(serve("--quiet", "--handshake-timeout", "1"))
    try:
        request = handshake_request(server.port)
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
            start = time.monotonic()
            cut = False
            for i in range(len(request) - 1):  # never the last byte
                try:
                    sock.sendall(request[i : i + 1])
                except OSError:
                    cut = True
                    break
                if select.select([sock], [], [], 0.2)[0]:
                    answer = sock.recv(4096)
                    assert not answer.startswith(b"HTTP/1.1 101"), answer
                    cut = True
                    break
                if i == 3:
                    echo_once(server.url)  # others are served during the drip
            assert cut, "the whole request but its last byte got through"
            assert time.monotonic() - start < TIMEOUT  # a bound on hangs, not a measure
        assert server.alive()
        echo_once(server.url)
    finally:
        server.stop()


def test_a_server_announcing_a_megabyte_costs_the_client_what_arrived() -> None:
    # The hostile side is the server: after its 101, a frame header announcing 1 MiB and
    # 16 bytes of it. wsio.sync's client keeps a buffer for what arrived, not 1 MiB.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def hostile() -> None:
            peer, _ = listener.accept()
            with peer:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += peer.recv(4096)
                key = re.search(rb"Sec-WebSocket-Key: *(\S+)", head, re.IGNORECASE)
                assert key
                peer.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + wsio.accept_key(key[1].decode()).encode()
                    + b"\r\n\r\n"
                    + struct.pack("!BBQ", 0x82, 127, 2**20)
                    + bytes(16)
                )
                done.wait(TIMEOUT)

        done = threading.Event()
        thread = threading.Thread(target=hostile, daemon=True)
        thread.start()
        try:
            with wsio_sync.connect(
                f"ws://127.0.0.1:{port}/", open_timeout=TIMEOUT, close_timeout=0.5
            ) as ws:  # its Close is never answered
                with pytest.raises(TimeoutError):
                    ws.recv(1.0)
                assert ws.protocol.buffer_size <= 128 * 1024, ws.protocol.buffer_size
        finally:
            done.set()
            thread.join(TIMEOUT)
