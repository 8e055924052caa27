"""``wsio bench`` against ``wsio serve``, both real processes: the counts add up.

No timing is asserted: only that every message sent came back, and that the report
(text or JSON) is complete and consistent.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30.0  # seconds a run may take before the test fails (never a measure)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """``python -m wsio serve`` on a free loopback port, for every test here."""
    server = subprocess.Popen(
        [sys.executable, "-m", "wsio", "serve", "--port", "0", "--quiet"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    match = re.fullmatch(r"listening on (127\.0\.0\.1:\d+)\n", server.stdout.readline())
    assert match
    yield f"ws://{match[1]}/"
    server.send_signal(signal.SIGINT)
    assert server.wait(TIMEOUT) == 0
    server.stdout.close()


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsio", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def run_json(*args: str) -> dict[str, Any]:
    result = bench(*args, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no progress line
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.parametrize("mode", ["pingpong", "firehose"])
def test_every_message_comes_back(url: str, mode: str) -> None:
    data = run_json(url, "--connections", "3", "--count", "200", "--size", "100", "--mode", mode)
    assert data["messages_sent"] == data["messages_received"] == 600
    assert data["bytes_received"] == 600 * 100
    assert (data["connections"], data["mode"], data["size"]) == (3, mode, 100)
    latency = data["latency_ms"]
    assert list(latency) == ["p50", "p90", "p99", "p99.9", "max"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["p99.9"]
    assert latency["p99.9"] <= latency["max"]
    assert sum(count for _, _, count in data["histogram_ms"]) == 600
    assert data["msgs_per_s"] > 0 and data["mb_per_s"] > 0 and data["errors"] == []


def test_a_firehose_of_large_messages_does_not_deadlock(url: str) -> None:
    # 64 MiB in flight would fill both sides' socket buffers; the window shrinks instead.
    data = run_json(url, "--mode", "firehose", "--size", "1M", "--count", "20")
    assert data["messages_received"] == data["messages_sent"] == 20


def test_a_timed_run_with_compression(url: str) -> None:
    data = run_json(url, "--duration", "0.5", "--compression", "--size", "1K")
    assert data["compression"] is True and data["duration_s"] == 0.5
    assert data["messages_received"] == data["messages_sent"] > 0


def test_the_text_report_and_the_plot(url: str, tmp_path: Path) -> None:
    plot = tmp_path / "latency.png"
    result = bench(url, "--count", "100", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("1 connections, pingpong, 32-byte messages: 100 echoes in ")
    assert re.fullmatch(r"  [\d,]+ msgs/s, [\d.,]+ MB/s", lines[1])
    assert re.fullmatch(r"  latency ms: p50 \S+, p90 \S+, p99 \S+, p99\.9 \S+, max \S+", lines[2])
    bars = [line for line in lines[3:] if " ms |" in line]
    assert sum(int(line.rsplit(" ", 1)[1].replace(",", "")) for line in bars) == 100
    if importlib.util.find_spec("matplotlib") is None:
        assert result.stderr == f"matplotlib is not installed: no plot written to {plot} " + (
            "(pip install matplotlib)\n"
        )
        assert not plot.exists()
    else:
        assert plot.read_bytes().startswith(b"\x89PNG")


def test_a_refused_connection_is_one_line() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    result = bench(f"ws://127.0.0.1:{port}/", "--count", "1")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "connection refused" in result.stderr
