"""Server processes under resource limits, and what the hostile tests read of them.

A server is ``python -m wsio serve`` or an example script, started with
``resource.setrlimit`` in ``preexec_fn``; its stdout and stderr go to files (a server
under attack logs a lot, and a full pipe would stall it). Everything here is loopback.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples"
#: Seconds any single step may take before the test fails: a bound on hangs, never a measure.
TIMEOUT = 20.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """A server started as a process, optionally under RLIMIT_NOFILE and RLIMIT_AS."""

    def __init__(
        self, argv: list[str], *, nofile: int | None = None, address_space: int | None = None
    ) -> None:
        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            if address_space is not None:
                resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            preexec_fn=limit,
            env=env,
        )
        self.pid = self.proc.pid
        match = self.wait_for_stdout(r"listening on (127\.0\.0\.1):(\d+)")
        self.host, self.port = match[1], int(match[2])
        self.url = f"ws://{self.host}:{self.port}/"

    def stdout(self) -> str:
        self._out.seek(0)
        return self._out.read().decode("utf-8", "replace")

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode("utf-8", "replace")

    def wait_for_stdout(self, pattern: str) -> re.Match[str]:
        return self._wait_for(self.stdout, pattern)

    def wait_for_stderr(self, pattern: str) -> re.Match[str]:
        return self._wait_for(self.stderr, pattern)

    def _wait_for(self, read: Callable[[], str], pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + TIMEOUT
        while True:
            match = re.search(pattern, read())
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited ({self.proc.returncode}) before {pattern!r}:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {TIMEOUT} s:\n{self.stderr()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status_kib(self, field: str) -> int:
        """A ``/proc/PID/status`` size field (VmRSS, VmSize) in KiB."""
        text = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
        assert match, text
        return int(match[1])

    def cpu_seconds(self) -> float:
        """User + system CPU time the process used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self._err.close()


def example(script: str, *args: str) -> list[str]:
    """argv for an example server on a free port."""
    return [str(EXAMPLES / script), "--port", "0", *args]


def serve(*args: str) -> list[str]:
    """argv for ``python -m wsio serve`` on a free port."""
    return ["-m", "wsio", "serve", "--port", "0", *args]


def hold_tcp(port: int, count: int) -> list[socket.socket]:
    """Up to ``count`` TCP connections that send nothing, opened one after another until
    one is not accepted within 2 s: the server is full, its listen backlog too."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=2.0))
            except TimeoutError:  # noqa: PERF203 (the end of the loop)
                break
    except BaseException:
        close_all(held)
        raise
    return held


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()
    socks.clear()


def echo_once(url: str, message: str = "still here", expect: str | None = None) -> None:
    """One WebSocket connection (websockets, compression offered): send, get the answer."""
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ws.send(message)
        assert ws.recv(TIMEOUT) == (message if expect is None else expect)


def answers_again(probe: Callable[[], None], within: float = TIMEOUT) -> None:
    """Retry ``probe`` until it passes (a server backing off takes up to ~1 s a try)."""
    deadline = time.monotonic() + within
    while True:
        try:
            probe()
            return
        except Exception:  # noqa: PERF203 (a retry loop)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def handshake_request(port: int, extra: str = "") -> bytes:
    return (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def raw_upgrade(port: int) -> socket.socket:
    """A WebSocket connection by hand: the handshake done, nothing read after the 101."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(handshake_request(port))
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)  # one byte at a time: nothing after the head is consumed
        assert byte, head
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock
