"""The example servers under attack (issue 8, items 1, 2 and 3), as real processes.

Every example server survives running out of file descriptors without spinning a core,
upgrades in the connection's thread (an idle socket holds up no one), and reads frames
with the library's limits (a declared length costs nothing until its bytes arrive).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from _hostile_servers import (
    TIMEOUT,
    ServerProcess,
    answers_again,
    close_all,
    echo_once,
    example,
    hold_tcp,
    raw_upgrade,
)
from websockets.sync.client import connect

MiB = 2**20
ACK = "this is an acknowledgement"
JSON_REQUEST = json.dumps({"id": 1, "method": "echo", "params": "x"})
JSON_RESPONSE = json.dumps({"id": 1, "result": "x"})

#: Each example server: its extra arguments and how to check that it answers.
SERVERS: dict[str, tuple[list[str], Callable[[str], None]]] = {
    "upgrade_raw.py": ([], echo_once),
    "echo_raw_frames.py": ([], echo_once),
    "upgrade_on_header.py": ([], echo_once),
    "upgrade_checks.py": (["--want-host", "127.0.0.1"], echo_once),
    "wsflate_frames.py": ([], lambda url: echo_once(url, "hi", expect=ACK)),
    "wsflate_stream.py": ([], echo_once),
    "echo_high_level.py": ([], echo_once),
    "echo_low_level.py": ([], echo_once),
    "echo_json.py": ([], lambda url: echo_once(url, JSON_REQUEST, expect=JSON_RESPONSE)),
}


@pytest.fixture
def start() -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def run(script: str, **limits: int) -> ServerProcess:
        server = ServerProcess(example(script, *SERVERS[script][0]), **limits)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.mark.parametrize("script", sorted(SERVERS))
def test_out_of_file_descriptors_pauses_without_spinning_and_recovers(
    start: Callable[..., ServerProcess], script: str
) -> None:
    server = start(script, nofile=64)
    probe = SERVERS[script][1]
    held = hold_tcp(server.port, 100)  # 64 descriptors: full, and the backlog too
    try:
        before = server.cpu_seconds()
        held[0].settimeout(3.0)
        with contextlib.suppress(TimeoutError, ConnectionError):
            held[0].recv(1)  # three seconds while it is full
        assert server.cpu_seconds() - before < 0.5  # backing off, not retrying at once
        server.wait_for_stderr("EMFILE: pausing new connections")
        assert server.alive()
        assert server.stderr().count("pausing new connections") == 1  # once an episode
    finally:
        close_all(held)
    answers_again(lambda: probe(server.url))
    assert server.alive()


@pytest.mark.parametrize("script", ["wsflate_frames.py", "wsflate_stream.py"])
def test_an_idle_socket_does_not_hold_up_other_clients(
    start: Callable[..., ServerProcess], script: str
) -> None:
    server = start(script)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    half = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and a handshake that stops halfway
    with idle, half:
        SERVERS[script][1](server.url)


def declare(sock: socket.socket, length: int) -> None:
    """Send the header of a masked binary frame declaring ``length`` bytes, and 10 of them."""
    sock.sendall(b"\x82\xff" + struct.pack("!Q", length) + b"\x01\x02\x03\x04" + bytes(10))


@pytest.mark.parametrize("script", ["upgrade_raw.py", "echo_raw_frames.py"])
def test_declared_frame_lengths_cost_no_memory_before_their_bytes(
    start: Callable[..., ServerProcess], script: str
) -> None:
    server = start(script)
    before = server.status_kib("VmRSS")
    with contextlib.ExitStack() as stack:
        # One frame declaring 1 GiB (over the default limit: refused at once) ...
        huge = stack.enter_context(raw_upgrade(server.port))
        declare(huge, 2**30)
        # ... and 20 declaring just under 16 MiB (within it), 10 bytes sent of each.
        for _ in range(20):
            sock = stack.enter_context(raw_upgrade(server.port))
            declare(sock, 16 * MiB - 1)
        grown = 0
        for _ in range(20):  # watched for two seconds while the server reads them
            grown = max(grown, server.status_kib("VmRSS") - before)
            time.sleep(0.1)
        assert grown < 64 * 1024, f"RSS grew by {grown} KiB"
        with connect(server.url, open_timeout=TIMEOUT) as ws:  # and it serves others
            ws.send("after")
            assert ws.recv(TIMEOUT) == "after"
        huge.settimeout(TIMEOUT)
        with contextlib.suppress(ConnectionError):
            while huge.recv(65536):  # the 1 GiB frame ends its connection
                pass
