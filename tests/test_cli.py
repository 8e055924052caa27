"""``python -m wsio serve`` and ``python -m wsio connect``, run as real processes.

The server is talked to by the ``websockets`` sync client and Node's WebSocket; the
interactive client talks to a ``websockets`` echo server running in this process.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import websocket  # websocket-client
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.server import Server, ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # seconds any single step may take before the test fails (never a measure)


class Process:
    """``python -m wsio ARGS`` with pipes for stdin, stdout and stderr."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsio", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdin, self.stdout, self.stderr = self.proc.stdin, self.proc.stdout, self.proc.stderr

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Wait for the exit (stdin left as it is); return the code, rest of stdout, stderr."""
        try:
            self.proc.wait(timeout)  # the outputs are a few lines: no pipe fills up
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"still running after {timeout} s") from None
        out, err = self.stdout.read(), self.stderr.read()
        self.close_pipes()
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close_pipes()

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:  # unread input for a process that is gone
                    pass


@pytest.fixture
def wsio_process() -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(*args: str) -> Process:
        process = Process(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


def start_server(wsio_process: Callable[..., Process], *args: str) -> tuple[Process, str]:
    server = wsio_process("serve", "--port", "0", *args)
    line = server.stdout.readline()
    match = re.fullmatch(r"listening on (127\.0\.0\.1):(\d+)\n", line)
    assert match, (line, server.finish()[2])
    return server, f"ws://{match[1]}:{match[2]}/"


# -- serve -----------------------------------------------------------------------------


def test_serve_echoes_and_stops_cleanly_on_sigint(wsio_process: Callable[..., Process]) -> None:
    from websockets.sync.client import connect

    server, url = start_server(wsio_process)
    with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        ws.send("hello")
        assert ws.recv(TIMEOUT) == "hello"
        ws.send(b"\x00" * 100_000)
        assert ws.recv(TIMEOUT) == b"\x00" * 100_000
        ws.send(["frag", "ments"])
        assert ws.recv(TIMEOUT) == "fragments"
        ws.send("")
        assert ws.recv(TIMEOUT) == ""
        assert ws.ping(b"?").wait(TIMEOUT)
        # Ctrl-C: the open connection is closed with 1001 (going away), then the exit.
        server.proc.send_signal(signal.SIGINT)
        with pytest.raises(ConnectionClosedOK):
            ws.recv(TIMEOUT)
        assert ws.close_code == 1001
    code, _, err = server.finish()
    assert code == 0, err
    assert "connected" in err and "shutting down" in err and "Traceback" not in err


def test_serve_stops_on_sigterm_with_nobody_connected(
    wsio_process: Callable[..., Process],
) -> None:
    server, _ = start_server(wsio_process)
    server.proc.send_signal(signal.SIGTERM)
    code, _, err = server.finish()
    assert code == 0, err


def test_serve_logs_each_connection_and_its_close(wsio_process: Callable[..., Process]) -> None:
    from websockets.sync.client import connect

    server, url = start_server(wsio_process)
    for n in range(3):
        with connect(url, open_timeout=TIMEOUT) as ws:
            ws.send(f"message {n}")
            assert ws.recv(TIMEOUT) == f"message {n}"
            ws.close(4000 + n)
            assert ws.close_code == 4000 + n
    server.proc.send_signal(signal.SIGINT)
    code, _, err = server.finish()
    assert code == 0
    assert err.count(": connected") == 3
    assert len(re.findall(r"closed after 1 messages: received 400[0-2]; sent 400[0-2]", err)) == 3


def test_serve_answers_bad_input_with_the_close_code(
    wsio_process: Callable[..., Process],
) -> None:
    server, url = start_server(wsio_process, "--max-message-size", "100")
    for frame, code in [
        (websocket.ABNF(fin=1, opcode=1, data=b"\xff"), 1007),  # not UTF-8
        (websocket.ABNF(fin=1, opcode=2, data=b"x" * 101), 1009),  # over the limit
        (websocket.ABNF(fin=1, rsv2=1, opcode=2, data=b""), 1002),  # RSV2 with no extension
    ]:
        ws = websocket.create_connection(url, timeout=TIMEOUT)
        try:
            ws.send_frame(frame)
            reply = ws.recv_frame()
            assert (reply.opcode, reply.data[:2]) == (8, code.to_bytes(2, "big"))
        finally:
            ws.shutdown()
    server.proc.send_signal(signal.SIGINT)
    code, _, err = server.finish()
    assert code == 0
    assert err.count("failed with close code") == 3


def test_serve_refuses_a_plain_http_request(wsio_process: Callable[..., Process]) -> None:
    import socket

    server, url = start_server(wsio_process)
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = sock.recv(100)
        assert response.startswith(b"HTTP/1.1 400 "), response
    server.proc.send_signal(signal.SIGINT)
    code, _, err = server.finish()
    assert code == 0, err
    assert "handshake failed" in err, err


def test_serve_with_node_websocket(wsio_process: Callable[..., Process]) -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the browser-WebSocket interop tests"
    server, url = start_server(wsio_process)
    script = r"""
    const ws = new WebSocket(process.argv[1]);
    const got = [];
    ws.onopen = () => { ws.send("node ✓"); ws.send("y".repeat(70000)); };
    ws.onmessage = (e) => {
      got.push(e.data.length > 10 ? e.data.length : e.data);
      if (got.length === 2) ws.close(1000);
    };
    ws.onclose = (e) => console.log(JSON.stringify({got, code: e.code, clean: e.wasClean}));
    """
    result = subprocess.run(
        [node, "--experimental-websocket", "--no-warnings", "-e", script, url],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=True,
    )
    assert json.loads(result.stdout) == {"got": ["node ✓", 70000], "code": 1000, "clean": True}
    server.proc.send_signal(signal.SIGINT)
    assert server.finish()[0] == 0


# -- connect ---------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[Callable[..., str]]:
    """A websockets echo server in a thread of this process; returns its URL."""
    servers: list[tuple[Server, threading.Thread]] = []

    def start(handler: Callable[[ServerConnection], None] | None = None) -> str:
        def echo(ws: ServerConnection) -> None:
            for message in ws:
                ws.send(message)

        server = serve(handler or echo, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"

    yield start
    for server, thread in servers:
        server.shutdown()
        thread.join(TIMEOUT)


def test_connect_sends_lines_and_prints_the_echoes(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    client = wsio_process("connect", echo_server())
    for line in ["hello", "κόσμε ✓", "", "last line"]:
        client.stdin.write(line + "\n")
        client.stdin.flush()
        assert client.stdout.readline() == line + "\n"
    client.stdin.close()  # end of input: Close 1000, then the server's answer
    code, rest, err = client.finish()
    assert (code, rest) == (0, "")
    assert "connected to ws://127.0.0.1:" in err
    assert "closed: received 1000; sent 1000" in err


def test_connect_prints_binary_as_hex_and_ends_when_the_server_closes(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(b"\x00\x01\xfe\xff")
        ws.send("text after binary")
        assert ws.recv(TIMEOUT) == "reply"
        ws.close(4001, "enough")

    client = wsio_process("connect", echo_server(handler))
    assert client.stdout.readline() == "[binary, 4 bytes] 0001feff\n"
    assert client.stdout.readline() == "text after binary\n"
    client.stdin.write("reply\n")
    client.stdin.flush()
    # The server closes while the client waits for input: it answers and exits.
    code, rest, err = client.finish()
    assert (code, rest) == (0, "")
    assert "closed: received 4001 (enough); sent 4001 (enough)" in err


def test_connect_closes_with_1000_on_sigint(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    client = wsio_process("connect", echo_server())
    client.stdin.write("one line\n")
    client.stdin.flush()
    assert client.stdout.readline() == "one line\n"
    client.proc.send_signal(signal.SIGINT)  # Ctrl-C with the input still open
    code, rest, err = client.finish()
    assert (code, rest) == (0, ""), err
    assert "closed: received 1000; sent 1000" in err


def test_connect_reports_a_refused_connection(wsio_process: Callable[..., Process]) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    client = wsio_process("connect", f"ws://127.0.0.1:{port}/")
    code, out, err = client.finish()
    assert (code, out) == (1, "")
    assert f"cannot connect to ws://127.0.0.1:{port}/" in err


def test_help_lists_both_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsio", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    assert "serve" in result.stdout and "connect" in result.stdout
