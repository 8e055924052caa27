"""A frame header is a promise, not bytes: every server's memory grows with the bytes
that arrived, never with a length the peer declared (gobwas/ws #223, aiohttp
GHSA-xcgm-r5h9-7989; reliability.md items 23 and 73).

Each server, as a real process, gets ~1,000 upgraded connections that each announce a
1 MiB or a 16 MiB binary frame (both under the servers' limits), send 16 bytes of it,
and stop. What the server committed for them (VmSize: address space, whether touched or
not; VmRSS: pages touched, which the pure-Python engine's zero-filled buffers are) must
stay a small fraction of what they announced, and the server must still answer a new
client at once.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
from _hostile_servers import TIMEOUT, ServerProcess, echo_once, example, handshake_request, serve

KiB = 1024
MiB = 2**20
#: Connections per server: under the asyncio layers' default max_connections (1,000),
#: so the client checked at the end is admitted.
CONNECTIONS = 960
#: What one announcing connection may cost the server once its header is in: the
#: announced lengths average 8.5 MiB; before, 1 MiB frames cost 1,032 KiB each.
BUDGET = 256 * KiB


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def on_port(script: str) -> list[str]:
    # The examples print the port they were given: a free one, not 0.
    argv = example(script)
    argv[argv.index("0")] = free_port()
    return argv


SERVERS = {
    "wsio.sync.serve": lambda: serve("--quiet"),
    "wsio.aio.serve": lambda: on_port("aio_echo.py"),
    "wsio.aio.create_server": lambda: on_port("aio_echo_callback.py"),
    "wsio.server+Upgrader+wsutil": lambda: on_port("echo_high_level.py"),
}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    process = ServerProcess(SERVERS[request.param]())
    yield process
    process.stop()


def upgraded(port: int) -> socket.socket:
    """A connection upgraded by hand (these servers send nothing after the 101 until
    they get a frame, so the head is read in whole chunks)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(handshake_request(port))
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def settle(server: ServerProcess) -> None:
    """Wait until the server stops using CPU: it has read what it was sent."""
    deadline = time.monotonic() + TIMEOUT
    before = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = server.cpu_seconds()
        if now == before:
            return
        before = now
    raise AssertionError("the server kept busy on connections that send nothing")


def announce(length: int) -> bytes:
    """A masked binary frame's header announcing ``length`` bytes, and 16 of them."""
    return struct.pack("!BBQ", 0x82, 0x80 | 127, length) + b"\x01\x02\x03\x04" + bytes(16)


def test_announced_lengths_cost_nothing_until_their_bytes_arrive(server: ServerProcess) -> None:
    echo_once(server.url)  # warmed up: its first connection's costs are not counted
    socks = [upgraded(server.port) for _ in range(CONNECTIONS)]
    try:
        echo_once(server.url)  # every connection is served, idle
        settle(server)
        rss, size = server.status_kib("VmRSS"), server.status_kib("VmSize")
        for i, sock in enumerate(socks):
            sock.sendall(announce(MiB if i % 2 else 16 * MiB))
        settle(server)
        grown_rss = (server.status_kib("VmRSS") - rss) * KiB
        grown_size = (server.status_kib("VmSize") - size) * KiB
        assert grown_rss < CONNECTIONS * BUDGET, grown_rss // CONNECTIONS
        assert grown_size < CONNECTIONS * BUDGET, grown_size // CONNECTIONS
        echo_once(server.url)  # a new client is served at once
    finally:
        for sock in socks:
            sock.close()
    echo_once(server.url)
