"""The seed's handshake examples, run as scripts and talked to by a real client.

Each example starts as a subprocess on a free loopback port (``--port 0``; it prints
``listening on HOST:PORT``) with this test run's environment, so ``WSIO_PURE=1`` runs
them on the pure-Python engine too. The client is ``websockets`` (sync).
"""

from __future__ import annotations

import platform
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 10.0  # seconds any single step may take before the test fails (never a measure)


class Server:
    """An example script running as a subprocess, and the address it listens on."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.stdout = ""
        self.stderr = ""
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1):(\d+)\n", line)
        if not match:
            self.stop()
            raise AssertionError(f"{script} did not start: {line!r} {self.stderr!r}")
        self.port = int(match[2])
        self.url = f"ws://127.0.0.1:{self.port}/"

    def readline(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def connect(self, host: str = "127.0.0.1", **kwargs: Any) -> ClientConnection:
        """A websockets client whose request says ``Host: host:port``, over loopback."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        client: ClientConnection = connect(
            f"ws://{host}:{self.port}/chat", sock=sock, open_timeout=TIMEOUT, **kwargs
        )
        return client

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.stdout, self.stderr = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.stdout, self.stderr = self.proc.communicate()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(script: str, *args: str) -> Server:
        server = Server(script, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
        # A traceback in the server's stderr is a bug even if the client saw nothing.
        assert "Traceback" not in server.stderr, server.stderr


@pytest.mark.parametrize("script", ["upgrade_raw.py", "upgrade_on_header.py"])
def test_upgrade_and_echo(serve: Callable[..., Server], script: str) -> None:
    server = serve(script)
    with server.connect() as ws:
        ws.send("hello, κόσμε")
        assert ws.recv(TIMEOUT) == "hello, κόσμε"
        ws.send(b"\x00\xff" * 40000)
        assert ws.recv(TIMEOUT) == b"\x00\xff" * 40000
        ws.close(4000, "done")
        assert ws.close_code == 4000


def test_upgrade_raw_refuses_a_bad_request(serve: Callable[..., Server]) -> None:
    server = serve("upgrade_raw.py")
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while part := sock.recv(4096):
            data += part
    assert data.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
    assert b"\r\nAllow: GET\r\n" in data


def test_on_header_logs_every_non_websocket_header(serve: Callable[..., Server]) -> None:
    server = serve("upgrade_on_header.py")
    headers = {"Cookie": "session=abc", "x-custom": "1"}
    with server.connect(additional_headers=headers, user_agent_header="wsio-test") as ws:
        ws.send("hi")
        assert ws.recv(TIMEOUT) == "hi"
    logged = [server.readline() for _ in range(3)]
    assert "non-websocket header: b'Cookie'=b'session=abc'\n" in logged
    assert "non-websocket header: b'X-Custom'=b'1'\n" in logged
    assert "non-websocket header: b'User-Agent'=b'wsio-test'\n" in logged


def test_checks_accept_the_wanted_host_and_add_the_version(serve: Callable[..., Server]) -> None:
    server = serve("upgrade_checks.py")
    with server.connect("github.com", additional_headers={"Cookie": 'a=1; b="2"'}) as ws:
        assert ws.response is not None
        assert ws.response.headers["X-Python-Version"] == platform.python_version()
        ws.send("checked")
        assert ws.recv(TIMEOUT) == "checked"


def test_checks_refuse_another_host_with_403(serve: Callable[..., Server]) -> None:
    server = serve("upgrade_checks.py")
    with pytest.raises(InvalidStatus) as info:
        server.connect("example.com")
    response = info.value.response
    assert response.status_code == 403
    assert response.headers["X-Want-Host"] == "github.com"
    assert "upgrade error" in server.readline()


def test_checks_refuse_a_bad_cookie_with_400(serve: Callable[..., Server]) -> None:
    server = serve("upgrade_checks.py", "--want-host", "localhost")
    with pytest.raises(InvalidStatus) as info:
        server.connect("localhost", additional_headers={"Cookie": "not a cookie"})
    response = info.value.response
    assert response.status_code == 400
    assert response.body == b"bad cookie"
    assert "X-Python-Version" not in response.headers
