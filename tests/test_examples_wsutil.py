"""The seed's four examples, run as scripts and talked to by real clients.

Each example starts as a subprocess on a free loopback port (``--port 0``; it prints
``listening on HOST:PORT``) with this test run's environment, so ``WSIO_PURE=1`` runs
them on the pure-Python engine too. The clients are ``websockets`` (sync),
``websocket-client`` and Node 20's built-in WebSocket.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket  # websocket-client
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 10.0  # seconds any single step may take before the test fails (never a measure)

# The servers that answer control frames and check their input (the Autobahn targets),
# and the one that only echoes frames.
CHECKING = ["echo_high_level.py", "echo_low_level.py"]
ALL_ECHO = [*CHECKING, "echo_raw_frames.py"]


class Server:
    """An example script running as a subprocess, and the URL it listens on."""

    stderr: str  # what the script wrote, once stopped

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), "--port", "0", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"listening on (127\.0\.0\.1):(\d+)\n", line)
        if not match:
            self.stop()
            raise AssertionError(f"{script} did not start: {line!r} {self.stderr!r}")
        self.url = f"ws://{match[1]}:{match[2]}/"
        self.stderr = ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            _, self.stderr = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()


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


# -- websockets (sync client) ---------------------------------------------------------


def closed_by_server(ws: ClientConnection, message: Any, text: bool | None = None) -> int | None:
    """Send ``message``, expect the server to close; the close code it sent."""
    # The Close frame may arrive while the message is still being sent.
    with pytest.raises(ConnectionClosedError):
        ws.send(message, text=text)
        ws.recv(TIMEOUT)
    return ws.close_code


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websockets_text_binary_and_fragmented(serve: Callable[..., Server], script: str) -> None:
    server = serve(script)
    with connect(server.url, open_timeout=TIMEOUT, max_size=None) as ws:
        ws.send("hello, κόσμε")
        assert ws.recv(TIMEOUT) == "hello, κόσμε"
        ws.send(b"\x00\xff" * 1000)
        assert ws.recv(TIMEOUT) == b"\x00\xff" * 1000
        ws.send(["frag", "ment", "ed ", "κό", "σμε"])  # five text fragments + an empty one
        assert ws.recv(TIMEOUT) == "fragmented κόσμε"
        ws.send([b"\x01" * 70000, b"\x02" * 5])
        assert ws.recv(TIMEOUT) == b"\x01" * 70000 + b"\x02" * 5
        ws.send("")
        assert ws.recv(TIMEOUT) == ""
        big = os.urandom(3 * 2**20)  # bigger than every buffer on the way
        ws.send(big)
        assert ws.recv(TIMEOUT) == big


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websockets_ping_is_answered_with_pong(serve: Callable[..., Server], script: str) -> None:
    server = serve(script)
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        assert ws.ping(b"are you there?").wait(TIMEOUT)
        ws.send("after the ping")
        assert ws.recv(TIMEOUT) == "after the ping"


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websockets_close_handshake_echoes_the_code(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        ws.send("bye")
        assert ws.recv(TIMEOUT) == "bye"
        ws.close(4321, "see you")
        assert ws.close_code == 4321
        assert ws.close_reason == "see you"


@pytest.mark.parametrize("script", CHECKING)
def test_websockets_invalid_utf8_is_closed_with_1007(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        # Bytes sent as a text frame: websockets does not check them.
        assert closed_by_server(ws, b"valid, then \xff not", text=True) == 1007


@pytest.mark.parametrize("script", CHECKING)
def test_websockets_invalid_utf8_in_fragments_is_closed_with_1007(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        # κ is CE BA: a character cut between fragments is fine, a bad byte is not.
        assert closed_by_server(ws, [b"ok \xce", b"\xba then \xc0\xaf"], text=True) == 1007


@pytest.mark.parametrize(
    ("script", "flag"),
    [
        ("echo_low_level.py", "--max-message-size"),
        ("echo_json.py", "--max-message-size"),
        ("echo_raw_frames.py", "--max-frame-size"),
    ],
)
def test_websockets_oversized_message_is_closed_with_1009(
    serve: Callable[..., Server], script: str, flag: str
) -> None:
    server = serve(script, flag, "1000")
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        ws.send("x" * 1000 if script != "echo_json.py" else json.dumps("x" * 998))
        ws.recv(TIMEOUT)  # exactly at the limit: answered
        assert closed_by_server(ws, b"y" * 1001) == 1009


def test_websockets_oversized_fragmented_message_is_closed_with_1009(
    serve: Callable[..., Server],
) -> None:
    server = serve("echo_low_level.py", "--max-message-size", "1000")
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        # Each frame is under the limit, the sum is not.
        assert closed_by_server(ws, [b"z" * 600, b"z" * 600]) == 1009


def test_high_level_default_limit_is_1009(serve: Callable[..., Server]) -> None:
    # read_client_data keeps the default limit of 16 MiB.
    server = serve("echo_high_level.py")
    with connect(server.url, open_timeout=TIMEOUT, max_size=None) as ws:
        assert closed_by_server(ws, [b"\x00" * 2**20] * 16 + [b"!"]) == 1009


# -- websocket-client ------------------------------------------------------------------


def _ws_client(url: str) -> websocket.WebSocket:
    return websocket.create_connection(url, timeout=TIMEOUT, enable_multithread=False)


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websocket_client_messages_ping_and_close(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    ws = _ws_client(server.url)
    try:
        ws.send("text ✓")
        assert ws.recv() == "text ✓"
        ws.send_binary(b"\x00\x01\x02")
        assert ws.recv() == b"\x00\x01\x02"
        # A fragmented text message with a ping between its fragments.
        ws.send_frame(websocket.ABNF.create_frame("first ", websocket.ABNF.OPCODE_TEXT, fin=0))
        ws.ping("mid-message")
        ws.send_frame(websocket.ABNF.create_frame("second", websocket.ABNF.OPCODE_CONT, fin=1))
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert (opcode, frame.data) == (websocket.ABNF.OPCODE_PONG, b"mid-message")
        opcode, frame = ws.recv_data_frame(control_frame=True)  # the fragments, joined
        assert (opcode, frame.data) == (websocket.ABNF.OPCODE_TEXT, b"first second")
        # The closing handshake: the server echoes the code and closes the connection.
        ws.send_close(4000, b"done")
        frame = ws.recv_frame()  # as it came: no automatic Close reply
        opcode = frame.opcode
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert frame.data[:2] == (4000).to_bytes(2, "big")
        assert ws.sock is not None and ws.sock.recv(1) == b""  # the server closed TCP
    finally:
        ws.shutdown()


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websocket_client_invalid_close_code_is_answered_with_1002(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    ws = _ws_client(server.url)
    try:
        ws.send_close(999, b"")  # RFC 6455 §7.4.2: below 1000 is never valid
        frame = ws.recv_frame()  # as it came: no automatic Close reply
        opcode = frame.opcode
        assert (opcode, frame.data[:2]) == (websocket.ABNF.OPCODE_CLOSE, b"\x03\xea")  # 1002
    finally:
        ws.shutdown()


@pytest.mark.parametrize("script", ALL_ECHO)
def test_websocket_client_reserved_bit_is_closed_with_1002(
    serve: Callable[..., Server], script: str
) -> None:
    server = serve(script)
    ws = _ws_client(server.url)
    try:
        # RFC 6455 §5.2: RSV1 "MUST be 0 unless an extension is negotiated".
        ws.send_frame(websocket.ABNF(fin=1, rsv1=1, opcode=websocket.ABNF.OPCODE_TEXT, data="?"))
        frame = ws.recv_frame()  # as it came: no automatic Close reply
        opcode = frame.opcode
        assert (opcode, frame.data[:2]) == (websocket.ABNF.OPCODE_CLOSE, b"\x03\xea")
    finally:
        ws.shutdown()


# -- Node 20's built-in WebSocket ------------------------------------------------------

NODE_SCRIPT = r"""
const [url] = process.argv.slice(1);
const ws = new WebSocket(url);
ws.binaryType = "arraybuffer";
const got = [];
ws.onopen = () => {
  ws.send("from node ✓");
  ws.send(new Uint8Array([1, 2, 3, 250]));
  ws.send("x".repeat(100000));
};
ws.onmessage = (event) => {
  got.push(typeof event.data === "string"
    ? event.data.length > 100 ? `text ${event.data.length}` : event.data
    : `binary ${Array.from(new Uint8Array(event.data)).join(",")}`);
  if (got.length === 3) ws.close(4100, "node done");
};
ws.onclose = (event) => {
  console.log(JSON.stringify({got, code: event.code, reason: event.reason, clean: event.wasClean}));
};
ws.onerror = (event) => { console.log(JSON.stringify({error: String(event.message)})); };
"""


def _node() -> str:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the browser-WebSocket interop tests"
    return node


@pytest.mark.parametrize("script", [*ALL_ECHO])
def test_node_websocket(serve: Callable[..., Server], script: str) -> None:
    server = serve(script)
    result = subprocess.run(
        [_node(), "--experimental-websocket", "--no-warnings", "-e", NODE_SCRIPT, server.url],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report == {
        "got": ["from node ✓", "binary 1,2,3,250", "text 100000"],
        "code": 4100,
        "reason": "node done",
        "clean": True,
    }


# -- the JSON loop ---------------------------------------------------------------------


def test_json_requests_and_responses(serve: Callable[..., Server]) -> None:
    server = serve("echo_json.py")
    with connect(server.url, open_timeout=TIMEOUT) as ws:
        ws.send(json.dumps({"id": 1, "method": "sum", "params": [1, 2, 3.5]}))
        assert json.loads(ws.recv(TIMEOUT)) == {"id": 1, "result": 6.5}
        ws.send(json.dumps({"id": "b", "method": "echo", "params": {"κ": [None, True]}}))
        assert json.loads(ws.recv(TIMEOUT)) == {"id": "b", "result": {"κ": [None, True]}}
        # A request streamed in fragments is one JSON document.
        ws.send(['{"id": 3, "meth', 'od": "sum", ', '"params": [40, 2]}'])
        assert json.loads(ws.recv(TIMEOUT)) == {"id": 3, "result": 42}
        ws.send(json.dumps({"id": 4, "method": "nope"}).encode())  # binary is fine too
        assert json.loads(ws.recv(TIMEOUT)) == {"id": 4, "error": "unknown method 'nope'"}
        ws.send("{not json")
        assert json.loads(ws.recv(TIMEOUT))["error"].startswith("bad request")
        ws.send(json.dumps({"id": 5, "method": "sum", "params": ["a"]}))
        assert json.loads(ws.recv(TIMEOUT)) == {"id": 5, "error": "sum takes a list of numbers"}
        assert ws.ping(b"p").wait(TIMEOUT)
        ws.close(1000)
        assert ws.close_code == 1000


def test_json_with_websocket_client_and_invalid_utf8(serve: Callable[..., Server]) -> None:
    server = serve("echo_json.py")
    ws = _ws_client(server.url)
    try:
        ws.send(json.dumps({"id": 1, "method": "echo", "params": "ok"}))
        assert json.loads(ws.recv()) == {"id": 1, "result": "ok"}
        ws.send_frame(websocket.ABNF(fin=1, opcode=websocket.ABNF.OPCODE_TEXT, data=b'"\xff"'))
        frame = ws.recv_frame()  # as it came: no automatic Close reply
        opcode = frame.opcode
        assert (opcode, frame.data[:2]) == (websocket.ABNF.OPCODE_CLOSE, b"\x03\xef")  # 1007
    finally:
        ws.shutdown()
