"""The examples as programs: a client example given a server that refuses the
connection, or a bad URL, says so in one line on stderr and exits non-zero; each example
server has a default port of its own (none on 8080, where ``make run`` serves)."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLIENTS = [
    "dial_client.py",
    "autobahn_client.py",
    "sync_autobahn_client.py",
    "aio_client.py",
    "aio_autobahn_client.py",
]
# Bounds on hangs only.
HANG = 60.0


def _refused_url() -> str:
    # A loopback port nobody listens on: bound, never listening, so connects are refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.mark.parametrize("script", CLIENTS)
@pytest.mark.parametrize("url", ["refused", "http//not-a-url"])
def test_a_client_example_fails_in_one_line(script: str, url: str) -> None:
    target = _refused_url() if url == "refused" else url
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), target, "agent"],
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert target.rstrip("/") in lines[0]


def _default_port(path: Path) -> int | None:
    # The default of ``parser.add_argument("--port", ..., default=N)``, if any.
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "--port"
        ):
            for keyword in node.keywords:
                if keyword.arg == "default" and isinstance(keyword.value, ast.Constant):
                    default = keyword.value.value
                    assert isinstance(default, (int, str)), default
                    return int(default)
    return None


def test_every_example_server_has_its_own_default_port() -> None:
    ports = {
        path.name: port
        for path in sorted(EXAMPLES.glob("*.py"))
        if (port := _default_port(path)) is not None
    }
    assert len(ports) >= 10, ports
    assert 8080 not in ports.values(), ports
    assert len(set(ports.values())) == len(ports), ports
