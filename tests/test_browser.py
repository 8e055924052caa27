"""A real browser on ``wsio serve``'s page: headless Chromium, driven over DevTools by wsio.

The page that ``python -m wsio serve`` hands out at ``/`` opens a WebSocket to the same
server, with the browser's own offer of permessage-deflate, sends a text and a binary
message and lists what comes back. Chromium is driven over its DevTools protocol (JSON
over a WebSocket) by :mod:`wsio.sync`'s client; the test reads the page's DOM and checks
a screenshot of it (a real PNG of the page's size, not blank).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wsio.sync import Connection, connect

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 10.0  # seconds a step may take before the test fails (never a measure)
WIDTH, HEIGHT = 640, 480


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m wsio serve`` on a free loopback port: the process and the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wsio", "serve", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", proc.stdout.readline())
    assert match, proc.communicate(timeout=TIMEOUT)
    yield proc, int(match[1])
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=TIMEOUT)


@pytest.fixture
def devtools(tmp_path: Path) -> Iterator[Connection]:
    """A wsio connection to a headless Chromium's DevTools (the browser endpoint)."""
    if not CHROMIUM.exists():
        pytest.fail("chromium is missing: apt-get install -y chromium", pytrace=False)
    profile = tmp_path / "profile"
    browser = subprocess.Popen(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--window-size={WIDTH},{HEIGHT}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Chromium writes its port and the browser endpoint's path once it listens.
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while len(lines := _read_lines(active)) < 2:
            assert browser.poll() is None, browser.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.05)
        with connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_message_size=None) as ws:
            yield ws
    finally:
        browser.kill()
        browser.wait(TIMEOUT)
        assert browser.stderr is not None
        browser.stderr.close()


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


class DevTools:
    """Commands to one page over the browser connection (flat sessions)."""

    def __init__(self, ws: Connection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.session: str | None = None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command, return its result (events meanwhile are skipped)."""
        number = next(self.ids)
        command: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session is not None:
            command["sessionId"] = self.session
        self.ws.send(json.dumps(command))
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = json.loads(self.ws.recv(max(0.0, deadline - time.monotonic())))
            if reply.get("id") == number:
                assert "error" not in reply, reply
                return reply["result"]  # type: ignore[no-any-return]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str, wanted: Any) -> None:
        """Poll ``expression`` until it equals ``wanted`` (at most TIMEOUT seconds)."""
        deadline = time.monotonic() + TIMEOUT
        while (value := self.evaluate(expression)) != wanted:
            assert time.monotonic() < deadline, f"{expression} is {value!r}, not {wanted!r}"
            time.sleep(0.05)


def test_chromium_exchanges_messages_with_the_page_and_shows_them(
    server: tuple[subprocess.Popen[str], int], devtools: Connection, tmp_path: Path
) -> None:
    proc, port = server
    tools = DevTools(devtools)
    target = tools.call("Target.createTarget", url="about:blank")["targetId"]
    tools.session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    tools.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
    tools.wait_for("document.body && document.body.dataset.state", "echoed")

    # The browser offered permessage-deflate and the server accepted it.
    assert tools.evaluate("document.body.dataset.extensions").startswith("permessage-deflate")
    # One more message, typed and sent as a person would.
    tools.evaluate(
        "document.getElementById('text').value = 'typed in Chromium ✓';"
        "document.getElementById('form').requestSubmit()"
    )
    tools.wait_for("document.querySelectorAll('li.text').length", 2)
    shown = tools.evaluate("Array.from(document.querySelectorAll('li'), (li) => li.textContent)")
    received = [line for line in shown if line.startswith("\u2190")]
    assert received[0] == "\u2190 hello from the browser"
    assert received[1] == "\u2190 [binary, 7 bytes] 00 01 02 7f 80 fe ff"
    assert received[2] == "\u2190 typed in Chromium ✓"

    png = base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"])
    (tmp_path / "page.png").write_bytes(png)
    width, height, pixels = decode_png(png)
    viewport = tools.evaluate("[innerWidth * devicePixelRatio, innerHeight * devicePixelRatio]")
    assert [width, height] == viewport
    assert len(set(pixels)) > 20  # text in several colours on a background, not blank

    proc.send_signal(2)  # SIGINT: the page's connection is closed with 1001
    tools.wait_for("document.body.dataset.state", "closed")
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert re.search(r"connected to / \(compression: permessage-deflate\)", err), err
    assert "GET / (the page)" in err


# -- a PNG reader, enough for a screenshot (8-bit RGB or RGBA, not interlaced) ---------


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and every pixel (as bytes) of ``data``; fails on anything else."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour in (2, 6), header
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    assert len(raw) == height * (stride + 1)
    previous = bytearray(stride)
    pixels: list[bytes] = []
    for row in range(height):
        start = row * (stride + 1)
        line = bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(raw[start], line, previous, channels)
        pixels.extend(bytes(line[i : i + channels]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels


def _unfilter(kind: int, line: bytearray, above: bytearray, bpp: int) -> None:
    # PNG spec §9.2: None, Sub, Up, Average, Paeth, each undone byte by byte.
    if kind == 0:
        return
    for i in range(len(line)):
        left = line[i - bpp] if i >= bpp else 0
        up = above[i]
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + ((left + up) >> 1)) & 0xFF
        else:
            corner = above[i - bpp] if i >= bpp else 0
            estimate = left + up - corner
            pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
            best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
            line[i] = (line[i] + best) & 0xFF
