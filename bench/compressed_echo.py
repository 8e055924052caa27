"""Compressed echo round trips over loopback: wsio with permessage-deflate vs its peers.

Run as ``python -m bench.compressed_echo`` (``--quick`` for a short run); the tables go
to stdout and to ``bench/results/compressed_echo.md``.

One connection per window, ``server ← client``, each server in a subprocess of its own:

- **wsio**: ``examples/wsflate_stream.py --port 0`` (no context takeover, the wsflate
  default) and ``--takeover``; the client is built like ``echo_deflate`` in
  ``examples/autobahn_client.py``: ``wsio.dial`` with the Extension's offer, then
  ``wsutil.Reader``/``Writer`` under ``wsflate.Reader``/``Writer``.
- **websockets**: ``websockets.sync.server.serve`` ← ``websockets.sync.client.connect``,
  ``compression="deflate"`` (their default) on both ends.
- **aiohttp**: ``web.WebSocketResponse(compress=True)`` ← ``ClientSession.ws_connect(
  compress=15)``.
- **wsio-level6**: ``examples/wsflate_stream.py --level 6`` (zlib's default level; the
  example's own default is the seed's 9), no takeover, ← the wsio client.
- Cross: the websockets client ← the wsio server.

A round trip sends one message and reads its echo whole. Messages: text (JSON-ish,
compressible; sent as ``str`` to the peers, which decode the echo as ``str``) and binary
(random, incompressible) at 256 B, 8 KiB and 100 KiB. CPU is client + server process
time per round trip (``time.process_time`` here, ``/proc/<pid>/stat`` for the server,
all threads). Each figure is the best of three windows (the pairs take turns, so a busy
spell of the machine is spread over all of them), with client and server pinned to one
core and then unpinned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

RESULTS = Path(__file__).resolve().parent / "results" / "compressed_echo.md"
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SIZES = (256, 8 << 10, 100 << 10)
KINDS = ("text", "binary")


# -- messages ----------------------------------------------------------------------------


def text_message(size: int) -> bytes:
    """``size`` bytes of JSON-ish ASCII: records of repeated keys, varying values."""
    rng = random.Random(size)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    parts: list[str] = []
    length = 0
    while length < size:
        record = json.dumps(
            {
                "id": rng.randrange(10**6),
                "user": rng.choice(words) + str(rng.randrange(1000)),
                "status": rng.choice(["active", "idle", "away"]),
                "score": round(rng.random() * 100, 2),
                "tags": rng.sample(words, 3),
            }
        )
        parts.append(record)
        length += len(record) + 1
    return ",".join(parts).encode()[:size]


def message(kind: str, size: int) -> bytes:
    """The payload of a ``kind`` ("text" or "binary") message of ``size`` bytes."""
    return text_message(size) if kind == "text" else random.Random(size).randbytes(size)


# -- servers (each in a subprocess) -------------------------------------------------------


def serve_websockets(listener: socket.socket) -> None:
    """Echo every message on websockets' threaded server, compression="deflate"."""
    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        for msg in ws:
            ws.send(msg)

    with serve(handler, sock=listener, compression="deflate", max_size=None) as server:
        server.serve_forever()


def serve_aiohttp(listener: socket.socket) -> None:
    """Echo every message on aiohttp's server, ``WebSocketResponse(compress=True)``."""
    from aiohttp import WSMsgType, web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=True, max_msg_size=0)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    web.run_app(app, sock=listener, print=None, handle_signals=True)


SERVE: dict[str, Callable[[socket.socket], None]] = {
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
}

#: Server name -> the command that starts it (it prints its port, or "listening on H:P").
SERVERS: dict[str, list[str]] = {
    "wsio": [sys.executable, "examples/wsflate_stream.py", "--port", "0"],
    "wsio-takeover": [sys.executable, "examples/wsflate_stream.py", "--port", "0", "--takeover"],
    "wsio-level6": [sys.executable, "examples/wsflate_stream.py", "--port", "0", "--level", "6"],
    "websockets": [sys.executable, "-m", "bench.compressed_echo", "--serve", "websockets"],
    "aiohttp": [sys.executable, "-m", "bench.compressed_echo", "--serve", "aiohttp"],
}


# -- clients (in this process) -------------------------------------------------------------


class Client(Protocol):
    negotiated: str  # the server's Sec-WebSocket-Extensions answer

    def roundtrips(self, count: int) -> None: ...
    def check(self) -> None: ...
    def close(self) -> None: ...


class WsioClient:
    """wsio.dial with the wsflate offer; wsflate streams over wsutil Reader/Writer."""

    def __init__(self, port: int, kind: str, payload: bytes, takeover: bool) -> None:
        import wsio
        from wsio import wsflate, wsutil

        # The browsers' offer (as the Autobahn client makes it); with takeover the client
        # also keeps its context across messages.
        config = wsflate.Parameters(
            client_no_context_takeover=not takeover, client_max_window_bits=True
        )
        extension = wsflate.Extension(parameters=config)
        self.conn, _ = wsio.dial(
            f"ws://{HOST}:{port}/",
            proxy=None,
            extensions=[extension.offer()],
            accept_extensions=extension.accept_extensions,
        )
        params = extension.accepted()
        assert params is not None, "the server did not agree to permessage-deflate"
        self.negotiated = str(params.option())
        state = wsio.State.CLIENT_SIDE | wsio.State.EXTENDED
        self.msg = wsflate.MessageState()
        self.controls = wsutil.ControlHandler(self.conn, state)
        self.rd = wsutil.Reader(
            self.conn, state, extensions=[self.msg], on_intermediate=self.controls.handle
        )
        self.opcode = wsio.OpCode.TEXT if kind == "text" else wsio.OpCode.BINARY
        self.wr = wsutil.Writer(self.conn, state, self.opcode)
        self.wr.set_extensions(self.msg)
        self.fr = wsflate.Reader(None, parameters=params, client=True, state=self.msg)
        self.fw = wsflate.Writer(None, parameters=params, client=True, state=self.msg)
        self.payload = payload
        self.last = b""
        self.is_control = wsio.is_control

    def roundtrips(self, count: int) -> None:
        wr, fw, rd, fr, payload = self.wr, self.fw, self.rd, self.fr, self.payload
        for _ in range(count):
            wr.reset_op(self.opcode)
            fw.reset(wr)
            fw.write(payload)
            fw.close()
            wr.flush()
            header = rd.next_frame()
            while self.is_control(header.opcode):
                self.controls.handle(header, rd.read())
                header = rd.next_frame()
            fr.reset(rd)
            self.last = fr.read() if self.msg.is_compressed() else rd.read()

    def check(self) -> None:
        assert self.msg.is_compressed(), "the echo came uncompressed"
        assert self.last == self.payload, "the echo differs"

    def close(self) -> None:
        self.conn.close()


class WebsocketsClient:
    def __init__(self, port: int, kind: str, payload: bytes) -> None:
        from websockets.sync.client import connect

        # Entered as a context manager, the form websockets 17.1+ asks for.
        self.ws = connect(f"ws://{HOST}:{port}/", compression="deflate", max_size=None)
        self.ws.__enter__()
        assert self.ws.response is not None
        self.negotiated = self.ws.response.headers.get("Sec-WebSocket-Extensions", "")
        self.payload: str | bytes = payload.decode() if kind == "text" else payload
        self.last: str | bytes = b""

    def roundtrips(self, count: int) -> None:
        ws, payload = self.ws, self.payload
        for _ in range(count):
            ws.send(payload)
            self.last = ws.recv()

    def check(self) -> None:
        assert self.last == self.payload, "the echo differs"

    def close(self) -> None:
        self.ws.__exit__(None, None, None)


class AiohttpClient:
    """ClientSession.ws_connect(compress=15), driven from a private event loop."""

    def __init__(self, port: int, kind: str, payload: bytes) -> None:
        import aiohttp

        self.loop = asyncio.new_event_loop()
        self.text = kind == "text"
        self.payload: str | bytes = payload.decode() if self.text else payload
        self.last: Any = None

        async def connect() -> tuple[aiohttp.ClientSession, Any]:
            session = aiohttp.ClientSession()
            ws = await session.ws_connect(f"ws://{HOST}:{port}/", compress=15, max_msg_size=0)
            return session, ws

        self.session, self.ws = self.loop.run_until_complete(connect())
        self.negotiated = self.ws._response.headers.get("Sec-WebSocket-Extensions", "")

    async def _roundtrips(self, count: int) -> None:
        ws, payload = self.ws, self.payload
        if isinstance(payload, str):
            for _ in range(count):
                await ws.send_str(payload)
                self.last = (await ws.receive()).data
        else:
            for _ in range(count):
                await ws.send_bytes(payload)
                self.last = (await ws.receive()).data

    def roundtrips(self, count: int) -> None:
        self.loop.run_until_complete(self._roundtrips(count))

    def check(self) -> None:
        assert self.last == self.payload, "the echo differs"

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.session.close()

        self.loop.run_until_complete(close())
        self.loop.close()


def _client(name: str, port: int, kind: str, payload: bytes) -> Client:
    if name == "wsio":
        return WsioClient(port, kind, payload, takeover=False)
    if name == "wsio-takeover":
        return WsioClient(port, kind, payload, takeover=True)
    if name == "websockets":
        return WebsocketsClient(port, kind, payload)
    return AiohttpClient(port, kind, payload)


#: (server, client) pairs: each library on both ends, then the websockets client against
#: the wsio server.
PAIRS = [
    ("wsio", "wsio"),
    ("wsio-takeover", "wsio-takeover"),
    ("wsio-level6", "wsio"),
    ("websockets", "websockets"),
    ("aiohttp", "aiohttp"),
    ("wsio", "websockets"),
]


# -- measurement ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _port(line: str) -> int:
    match = re.search(r"(\d+)\s*$", line)
    if match is None:
        raise RuntimeError(f"the server did not say its port: {line!r}")
    return int(match.group(1))


@contextmanager
def _servers(pinned: bool) -> Iterator[dict[str, tuple[int, int]]]:
    """Start every server; yield {name: (port, pid)}; pinned: them and us on core 0."""
    procs = {
        name: subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for name, command in SERVERS.items()
    }
    everything = os.sched_getaffinity(0)
    try:
        running = {}
        for name, proc in procs.items():
            assert proc.stdout is not None
            running[name] = (_port(proc.stdout.readline()), proc.pid)
            if pinned:
                # Threads made later (per connection, executors) inherit the affinity.
                os.sched_setaffinity(proc.pid, {0})
        if pinned:
            os.sched_setaffinity(0, {0})
        yield running
    finally:
        os.sched_setaffinity(0, everything)
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=10)


@dataclass
class Result:
    rate: float  # round trips per second
    cpu: float  # client + server CPU µs per round trip


def window(client: str, port: int, pid: int, kind: str, size: int, seconds: float) -> Result:
    """One timed window on a new connection: round trips/s and CPU µs per round trip."""
    payload = message(kind, size)
    batch = max(1, (64 << 10) // (size * 4))
    c = _client(client, port, kind, payload)
    try:
        c.roundtrips(max(3, batch))  # warm-up, and the echo checked once
        c.check()
        count = 0
        cpu = time.process_time() + _cpu_seconds(pid)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            c.roundtrips(batch)
            count += batch
        elapsed = time.perf_counter() - start
        cpu = time.process_time() + _cpu_seconds(pid) - cpu
        c.check()
    finally:
        c.close()
    return Result(count / elapsed, cpu / count * 1e6)


Key = tuple[str, int, str, str]  # kind, size, server, client


def measure(pinned: bool, seconds: float, rounds: int) -> tuple[dict[Key, Result], dict[str, str]]:
    """The best of ``rounds`` windows for every message and pair, pairs taking turns;
    also each pair's negotiated extension."""
    best: dict[Key, Result] = {}
    negotiated: dict[str, str] = {}
    with _servers(pinned) as servers:
        for server, client in PAIRS:
            port, _ = servers[server]
            c = _client(client, port, "binary", b"x")
            negotiated[_pair(server, client)] = c.negotiated
            c.close()
        for _ in range(rounds):
            for kind in KINDS:
                for size in SIZES:
                    for server, client in PAIRS:
                        port, pid = servers[server]
                        r = window(client, port, pid, kind, size, seconds)
                        key = (kind, size, server, client)
                        if r.rate > best.get(key, Result(0.0, 0.0)).rate:
                            best[key] = r
    return best, negotiated


# -- report ----------------------------------------------------------------------------------


def _pair(server: str, client: str) -> str:
    return f"{server} ← {client}" if server != client else f"{server} ↔ {client}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def _size(size: int) -> str:
    from bench import humanize_size

    return humanize_size(size)


SETTINGS = {
    "wsio ↔ wsio": "no takeover either way, 15 bits; server level 9 (the example), client 6",
    "wsio-takeover ↔ wsio-takeover": "takeover both ways, 15 bits; server level 9, client 6",
    "wsio-level6 ← wsio": "no takeover either way, 15 bits; examples/wsflate_stream.py "
    "--level 6, client 6",
    "websockets ↔ websockets": "takeover both ways, 12 bits, level 6, memLevel 5",
    "aiohttp ↔ aiohttp": "takeover both ways, 15 bits, level 1; > 16 KiB compressed in a "
    "thread-pool executor",
    "wsio ← websockets": "server: no takeover, 15 bits, level 9; client: no takeover "
    "(told by the server), 12 bits",
}


def _settings(negotiated: dict[str, str]) -> list[str]:
    from bench import Table

    table = Table(
        "Negotiated permessage-deflate (the server's answer) and compressor settings",
        ["server ← client", "Sec-WebSocket-Extensions", "settings"],
    )
    for pair, header in negotiated.items():
        table.rows.append([pair, f"`{header}`", SETTINGS.get(pair, "")])
    return [table.markdown()]


def _tables(where: str, results: dict[Key, Result]) -> list[str]:
    from bench import Table

    detail = Table(
        f"Round trips, {where}",
        ["message", "server ← client", "round trips/s", "CPU µs/round trip", "wsio ↔ wsio ÷ this"],
    )
    summary = Table(
        f"wsio against the peers, {where} (round trips/s ratios; CPU ratio < 1: wsio uses less)",
        [
            "message",
            "wsio rt/s",
            "÷ websockets",
            "÷ aiohttp",
            "CPU ÷ websockets",
            "CPU ÷ aiohttp",
            "wsio-takeover ÷ websockets",
            "wsio-takeover ÷ aiohttp",
            "wsio-level6 ÷ websockets",
            "wsio-level6 ÷ aiohttp",
        ],
    )
    for kind in KINDS:
        for size in SIZES:
            label = f"{kind} {_size(size)}"
            wsio = results[(kind, size, "wsio", "wsio")]
            take = results[(kind, size, "wsio-takeover", "wsio-takeover")]
            ws = results[(kind, size, "websockets", "websockets")]
            aio = results[(kind, size, "aiohttp", "aiohttp")]
            six = results[(kind, size, "wsio-level6", "wsio")]
            for server, client in PAIRS:
                r = results[(kind, size, server, client)]
                detail.rows.append(
                    [
                        label,
                        _pair(server, client),
                        _rate(r.rate),
                        f"{r.cpu:,.1f}",
                        _ratio(wsio.rate, r.rate),
                    ]
                )
            summary.rows.append(
                [
                    label,
                    _rate(wsio.rate),
                    _ratio(wsio.rate, ws.rate),
                    _ratio(wsio.rate, aio.rate),
                    _ratio(wsio.cpu, ws.cpu),
                    _ratio(wsio.cpu, aio.cpu),
                    _ratio(take.rate, ws.rate),
                    _ratio(take.rate, aio.rate),
                    _ratio(six.rate, ws.rate),
                    _ratio(six.rate, aio.rate),
                ]
            )
    return [summary.markdown(), detail.markdown()]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; print the tables and write them to bench/results/compressed_echo.md."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (rough numbers)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per window")
    parser.add_argument("--no-unpinned", action="store_true", help="only the pinned rows")
    parser.add_argument("--serve", choices=SERVE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        listener = socket.create_server((HOST, 0), backlog=64)
        print(listener.getsockname()[1], flush=True)
        SERVE[args.serve](listener)
        return

    from bench import machine

    seconds, rounds = (0.3, 1) if args.quick else (0.5, 3)
    if args.seconds is not None:
        seconds = args.seconds
    lines = [
        "# Compressed echo over loopback: wsio permessage-deflate vs websockets and aiohttp",
        "",
        machine.markdown(),
        "",
        "Each row is one connection: `server ← client`; see the docstring of "
        f"`bench/compressed_echo.py`. Best of {rounds} windows of {seconds} s.",
        "",
    ]
    print("\n".join(lines), flush=True)
    sections: list[str] = []
    modes = [True] if args.no_unpinned else [True, False]
    for pinned in modes:
        where = "pinned to one core" if pinned else "unpinned (2 cores)"
        results, negotiated = measure(pinned, seconds, rounds)
        section = [f"## Client and server {where}", ""]
        if pinned or not sections:
            section += _settings(negotiated)
        section += _tables(where, results)
        print("\n".join(section), flush=True)
        sections += section
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([*lines, *sections]))


if __name__ == "__main__":
    main()
