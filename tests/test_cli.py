"""``wsio serve`` and ``wsio connect``, run as real processes, and the command line's errors.

The server is talked to by the ``websockets`` sync client, websocket-client, Node's
WebSocket and plain HTTP; the interactive client talks to ``websockets`` servers running
in this process. Mistakes in the command line are checked in-process through ``main``
(the same code, faster than a process each).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme
import websocket  # websocket-client
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.sync.server import Server, ServerConnection, serve

import wsio
from wsio.cli import main

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0  # seconds any single step may take before the test fails (never a measure)


def _signal_state(pid: int) -> str:
    """What a hung process's threads block, ignore, catch and have pending (Linux)."""
    lines = []
    for status in sorted(Path(f"/proc/{pid}/task").glob("*/status")):
        with contextlib.suppress(OSError):
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            lines.append(
                f"thread {status.parent.name}: "
                + " ".join(
                    f"{k}={fields.get(k, '?')}"
                    for k in ("SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
                )
            )
    return "; ".join(lines) or "no /proc"


class Process:
    """``python -m wsio ARGS`` with pipes for stdin, stdout and stderr."""

    def __init__(
        self, *args: str, executable: list[str] | None = None, blocked: tuple[int, ...] = ()
    ) -> None:
        # ``blocked``: signals the process starts with blocked, as a parent's mask is
        # inherited across exec.
        self.proc = subprocess.Popen(
            [*(executable or [sys.executable, "-m", "wsio"]), *args],
            preexec_fn=(lambda: signal.pthread_sigmask(signal.SIG_BLOCK, blocked))
            if blocked
            else None,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            # A process that hangs is sent SIGABRT: every thread's stack goes to stderr.
            env={**os.environ, "PYTHONFAULTHANDLER": "1"},
        )
        assert self.proc.stdin and self.proc.stdout and self.proc.stderr
        self.stdin, self.stdout, self.stderr = self.proc.stdin, self.proc.stdout, self.proc.stderr

    def finish(self, timeout: float = TIMEOUT) -> tuple[int, str, str]:
        """Wait for the exit (stdin left as it is); return the code, rest of stdout, stderr."""
        try:
            self.proc.wait(timeout)  # the outputs are a few lines: no pipe fills up
        except subprocess.TimeoutExpired:
            signals = _signal_state(self.proc.pid)
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(TIMEOUT)
                stacks = self.stderr.read()
            except subprocess.TimeoutExpired:
                stacks = "(no stacks: SIGABRT did not end it)"
            self.kill()
            raise AssertionError(
                f"still running after {timeout} s ({signals}):\n{stacks}"
            ) from None
        out, err = self.stdout.read(), self.stderr.read()
        self.close_pipes()
        return self.proc.returncode, out, err

    def stop(self) -> tuple[int, str, str]:
        """SIGINT (Ctrl-C), then :meth:`finish`."""
        self.proc.send_signal(signal.SIGINT)
        return self.finish()

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


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


# -- serve -----------------------------------------------------------------------------


def test_serve_echoes_and_stops_cleanly_on_sigint(wsio_process: Callable[..., Process]) -> None:
    from websockets.sync.client import connect

    server, url = start_server(wsio_process)
    with connect(url, open_timeout=TIMEOUT, max_size=None) as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
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
    assert "connected to / (compression: permessage-deflate)" in err
    assert "shutting down" in err and "Traceback" not in err


def test_serve_without_compression_and_with_limits(wsio_process: Callable[..., Process]) -> None:
    from websockets.sync.client import connect

    server, url = start_server(
        wsio_process, "--no-compression", "--max-message-size", "1K", "--max-frame-size", "512"
    )
    with connect(url, open_timeout=TIMEOUT) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("x" * 500)
        assert ws.recv(TIMEOUT) == "x" * 500
        ws.send("x" * 600)  # one frame over --max-frame-size
        with pytest.raises(Exception, match="1009"):
            ws.recv(TIMEOUT)
    code, _, err = server.stop()
    assert code == 0, err
    assert "(no compression)" in err


def test_serve_stops_on_sigterm_with_nobody_connected(
    wsio_process: Callable[..., Process],
) -> None:
    server, _ = start_server(wsio_process)
    server.proc.send_signal(signal.SIGTERM)
    code, _, err = server.finish()
    assert code == 0, err


def test_serve_stops_on_sigint_even_if_its_parent_blocked_it() -> None:
    # A supervisor (or a thread of a test runner) that starts wsio with SIGINT and
    # SIGTERM blocked hands that mask down: Ctrl-C must still stop the server, not stay
    # pending while it waits in accept().
    server = Process("serve", "--port", "0", blocked=(signal.SIGINT, signal.SIGTERM))
    try:
        assert server.stdout.readline().startswith("listening on ")
        code, _, err = server.stop()
        assert code == 0, err
        assert "shutting down" in err
    finally:
        server.kill()
        server.close_pipes()


def test_serve_logs_each_connection_and_its_close(wsio_process: Callable[..., Process]) -> None:
    from websockets.sync.client import connect

    server, url = start_server(wsio_process)
    for n in range(3):
        with connect(url + f"path/{n}", open_timeout=TIMEOUT) as ws:
            ws.send(f"message {n}")
            assert ws.recv(TIMEOUT) == f"message {n}"
            ws.close(4000 + n)
            assert ws.close_code == 4000 + n
    code, _, err = server.stop()
    assert code == 0
    assert len(re.findall(r": connected to /path/\d", err)) == 3
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
    code, _, err = server.stop()
    assert code == 0
    for sent in (1007, 1009, 1002):
        assert re.search(rf"closed after 0 messages: received \d+; sent {sent}", err), err


def test_serve_hands_out_its_page_to_a_plain_get(wsio_process: Callable[..., Process]) -> None:
    server, url = start_server(wsio_process)
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=TIMEOUT)
    connection.request("GET", "/")
    response = connection.getresponse()
    page = response.read().decode()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "new WebSocket(" in page and "</html>" in page
    connection.close()
    # The page goes through the same request handling: the head limits hold.
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=TIMEOUT)
    connection.request("GET", "/", headers={"X-Big": "x" * 70_000})
    assert connection.getresponse().status == 431
    connection.close()
    # Elsewhere, a request that is not an upgrade is refused as before.
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=TIMEOUT)
    connection.request("GET", "/favicon.ico")
    assert connection.getresponse().status == 400
    connection.close()
    code, _, err = server.stop()
    assert code == 0, err
    assert "GET / (the page)" in err
    assert "refused with 400: missing or bad Upgrade header" in err


def test_serve_says_when_a_tls_client_knocks(wsio_process: Callable[..., Process]) -> None:
    server, url = start_server(wsio_process)
    context = ssl.create_default_context()
    with (
        socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock,
        pytest.raises((ssl.SSLError, OSError)),
    ):
        context.wrap_socket(sock, server_hostname="localhost")
    code, _, err = server.stop()
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "looks like TLS" in line]
    assert len(warnings) == 1, err
    assert "request line" not in err


def test_serve_with_tls_and_connect_with_cafile_or_insecure(
    wsio_process: Callable[..., Process], tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    server, url = start_server(wsio_process, "--tls", str(cert_file), str(key_file))
    wss = url.replace("ws://", "wss://")
    for trust in (["--cafile", str(ca_file)], ["--insecure"]):
        client = wsio_process("connect", wss, *trust)
        client.stdin.write("over TLS\n")
        client.stdin.close()
        code, out, err = client.finish()
        assert (code, out) == (0, "over TLS\n"), err
    # Without either, the certificate is checked and refused: one line.
    code, out, err = wsio_process("connect", wss).finish()
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "certificate" in err and "--cafile" in err, err
    assert server.stop()[0] == 0


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
    assert server.stop()[0] == 0


# -- connect ---------------------------------------------------------------------------


@pytest.fixture
def echo_server() -> Iterator[Callable[..., str]]:
    """A websockets server in a thread of this process; returns its URL."""
    servers: list[tuple[Server, threading.Thread]] = []

    def start(handler: Callable[[ServerConnection], None] | None = None, **options: object) -> str:
        def echo(ws: ServerConnection) -> None:
            for message in ws:
                ws.send(message)

        server = serve(handler or echo, "127.0.0.1", 0, **options)  # type: ignore[arg-type]
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
    for line in ["hello", "κόσμε ✓", "", "//not a command"]:
        client.stdin.write(line + "\n")
        client.stdin.flush()
        assert client.stdout.readline() == line.removeprefix("/") + "\n"
    client.stdin.close()  # end of input: Close 1000, then the server's answer
    code, rest, err = client.finish()
    assert (code, rest) == (0, "")
    assert "connected to ws://127.0.0.1:" in err and "(permessage-deflate)" in err
    assert "closed: received 1000; sent 1000" in err


def test_connect_from_a_pipe_prints_every_reply(echo_server: Callable[..., str]) -> None:
    # The replies are drained before the close: every run prints all three.
    url = echo_server()
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-m", "wsio", "connect", url],
            input="a\nb\nc\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=ROOT,
        )
        assert (result.returncode, result.stdout) == (0, "a\nb\nc\n"), result.stderr


def test_connect_prints_binary_as_hex_and_exits_1_on_an_error_code(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(b"\x00\x01\xfe\xff")
        ws.send("text after binary")
        assert ws.recv(TIMEOUT) == "reply"
        ws.close(1011, "broken")

    client = wsio_process("connect", echo_server(handler))
    assert client.stdout.readline() == "[binary, 4 bytes] 0001feff\n"
    assert client.stdout.readline() == "text after binary\n"
    client.stdin.write("reply\n")
    client.stdin.flush()
    # The server closes while the client waits for input: it answers and exits.
    code, rest, err = client.finish()
    assert (code, rest) == (1, ""), err
    assert "closed: received 1011 (broken); sent 1011" in err


def test_connect_exits_1_when_the_connection_is_lost(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    def handler(ws: ServerConnection) -> None:
        ws.recv(TIMEOUT)
        ws.socket.shutdown(socket.SHUT_RDWR)  # no Close frame: 1006 on the other side

    client = wsio_process("connect", echo_server(handler))
    client.stdin.write("anything\n")
    client.stdin.flush()
    code, _, err = client.finish()
    assert code == 1, err
    assert "received 1006" in err


def test_connect_commands_ping_and_close(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    closed: list[tuple[int | None, str | None]] = []

    def handler(ws: ServerConnection) -> None:
        with pytest.raises(ConnectionClosed):
            ws.recv()  # 4321 is not a normal closure: websockets raises
        closed.append((ws.close_code, ws.close_reason))

    client = wsio_process("connect", echo_server(handler))
    client.stdin.write("/ping\n/nonsense\n/close 4321 all done\n")
    client.stdin.flush()
    code, out, err = client.finish()
    assert (code, out) == (0, ""), err
    assert re.search(r"pong after \d+\.\d+ ms", err), err
    assert "unknown command /nonsense" in err
    assert "closed: received 4321 (all done); sent 4321 (all done)" in err
    assert closed == [(4321, "all done")]


def test_connect_sends_headers_and_subprotocol_and_can_skip_compression(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    def handler(ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request is not None else {}
        ws.send(
            json.dumps(
                {
                    "token": headers.get("X-Token"),
                    "extensions": headers.get("Sec-WebSocket-Extensions"),
                    "subprotocol": ws.subprotocol,
                }
            )
        )
        ws.recv(TIMEOUT)

    url = echo_server(handler, subprotocols=["chat.v2"])
    client = wsio_process(
        "connect", url, "--header", "X-Token: s3cret", "--subprotocol", "chat.v2",
        "--no-compression",
    )  # fmt: skip
    seen = json.loads(client.stdout.readline())
    assert seen == {"token": "s3cret", "extensions": None, "subprotocol": "chat.v2"}
    client.stdin.close()
    code, _, err = client.finish()
    assert code == 0 and "(subprotocol chat.v2)" in err, err


def test_connect_closes_with_1000_on_sigint(
    wsio_process: Callable[..., Process], echo_server: Callable[..., str]
) -> None:
    client = wsio_process("connect", echo_server())
    client.stdin.write("one line\n")
    client.stdin.flush()
    assert client.stdout.readline() == "one line\n"
    code, rest, err = client.stop()  # Ctrl-C with the input still open
    assert (code, rest) == (0, ""), err
    assert "closed: received 1000; sent 1000" in err


def test_connect_reports_a_refused_connection(wsio_process: Callable[..., Process]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    code, out, err = wsio_process("connect", f"ws://127.0.0.1:{port}/").finish()
    assert (code, out) == (1, "")
    assert err == f"python -m wsio connect: cannot connect to ws://127.0.0.1:{port}/: " + (
        "connection refused (is a server listening there?)\n"
    )


# -- mistakes: one line on stderr, a non-zero status, no traceback -----------------------


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``main(argv)`` in this process: (exit status, stderr), stdout checked empty."""
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    assert out == ""
    return code, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["connect", "not a url"], "is not a WebSocket URL"),
        (["connect", "http://127.0.0.1:8080/"], "a WebSocket URL starts with ws://"),
        (["connect", "https://127.0.0.1/"], "a WebSocket URL starts with wss://"),
        (["connect", "127.0.0.1:8080"], "is not a WebSocket URL"),
        (["connect", "ws://127.0.0.1:99999/"], "Port out of range"),
        (["connect", "ws:///path"], "is not a WebSocket URL"),
        (["connect", "ws://127.0.0.1/", "--header", "no colon"], "is not a header"),
        (["connect", "ws://127.0.0.1/", "--cafile", "/nonexistent.pem"], "no such file"),
        (["serve", "--port", "99999"], "port 99999 is out of range"),
        (["serve", "--port", "eighty"], "'eighty' is not an integer"),
        (["serve", "--max-message-size", "-1"], "is not a size"),
        (["serve", "--max-frame-size", "lots"], "is not a size"),
        (["serve", "--max-connections", "0"], "is not a positive integer"),
        (["serve", "--handshake-timeout", "0"], "must be a positive number of seconds"),
        (["serve", "--ping-interval", "-5"], "must be a positive number of seconds"),
        (["serve", "--tls", "/nonexistent.pem", "/nonexistent.key"], "no such file"),
        (["bench", "ws://127.0.0.1/", "--connections", "0"], "is not a positive integer"),
        (["bench", "ws://127.0.0.1/", "--count", "5", "--duration", "1"], "not allowed with"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_a_mistake_is_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = run_main(capsys, *argv)
    assert code in (1, 2)
    assert err.count("\n") == 1 and message in err, err


def test_serve_on_a_port_in_use_or_an_unknown_host(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, err = run_main(capsys, "serve", "--port", str(port))
    assert code == 1
    assert err.endswith(
        f"cannot listen on 127.0.0.1:{port}: the port is in use (try another --port)\n"
    )
    code, err = run_main(capsys, "serve", "--host", "nosuch.invalid", "--port", "0")
    assert code == 1
    assert err.count("\n") == 1 and "unknown host 'nosuch.invalid'" in err, err


def test_connect_to_an_unknown_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_main(capsys, "connect", "ws://nosuch.invalid/")
    assert code == 1
    assert err.count("\n") == 1 and "unknown host 'nosuch.invalid'" in err, err


# -- the program itself ----------------------------------------------------------------


def test_help_shows_the_name_it_was_run_as() -> None:
    script = Path(sys.executable).with_name("wsio")
    assert script.exists(), "the wsio script is installed beside this Python (pip install -e .)"
    for command, name in (
        ([sys.executable, "-m", "wsio"], "python -m wsio"),
        ([str(script)], "wsio"),
    ):
        result = subprocess.run(
            [*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: {name} [-h] [--version] COMMAND")
        assert all(word in result.stdout for word in ("serve", "connect", "bench"))


def test_version_says_whether_the_engine_is_compiled(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    out = capsys.readouterr().out
    engine = "engine compiled" if wsio.COMPILED else "engine pure Python"
    assert out.startswith(f"wsio {wsio.__version__}, {engine}"), out
