"""Compressed echo round trips over loopback: wsio with permessage-deflate vs its peers.

Run as ``python -m bench.compressed_echo`` (``--quick`` for a short run); the tables go
to stdout and to ``bench/results/compressed_echo.md``.

One connection per window, ``server ← client``, each server in a subprocess of its own,
every library at its default compression settings:

- **wsio-aio**: ``wsio.aio.serve`` (the high level), a handler that sends back every
  message; **wsio-sync**: ``wsio.sync.serve``, the same handler in a thread. The wsio
  client is ``wsio.sync.connect``. Both ends take every default, so they run the one
  ``PerMessageDeflate`` of the library (no context takeover, ``DEFAULT_LEVEL``).
- **wsio-takeover**: ``examples/wsflate_stream.py --takeover`` at the library's level,
  ← the example Autobahn client's streams with takeover too: what keeping the window
  buys when the memory per connection is spent on it.
- **websockets**: ``websockets.sync.server.serve`` ← ``websockets.sync.client.connect``,
  ``compression="deflate"`` (their default) on both ends.
- **aiohttp**: ``web.WebSocketResponse(compress=True)`` ← ``ClientSession.ws_connect(
  compress=15)``.
- Cross: the websockets and aiohttp clients ← wsio-aio (the server's CPU against the
  same client).

A round trip sends one message and reads its echo whole. Messages: text (JSON-ish,
compressible; sent as ``str`` to the peers, which decode the echo as ``str``) and binary
(random, incompressible) at 256 B, 8 KiB and 100 KiB. Each window cycles through
different messages of the kind and size, 64 KiB of them at least (``variants``): echoing
one message again and again, or a few that fit in a 32 KiB window together, would let a
compressor that keeps its window (context takeover) find the whole message in it and
send a few bytes, which no real traffic does (messages alike in their keys, not in
every byte, are what it has). CPU is client + server
process time per round trip (``time.process_time`` here, ``/proc/<pid>/stat`` for the
server, all threads). Each figure is the best of three windows (the pairs take turns, so
a busy spell of the machine is spread over all of them), with client and server pinned
to one core and then unpinned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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

from wsio.wsflate import DEFAULT_LEVEL

RESULTS = Path(__file__).resolve().parent / "results" / "compressed_echo.md"
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SIZES = (256, 8 << 10, 100 << 10)
KINDS = ("text", "binary")
#: Different messages of one kind and size that a window sends in turn: at least this
#: many, and at least 64 KiB of them (twice the largest LZ77 window).
VARIANTS = 8
VARIANT_BYTES = 64 << 10


def variants(size: int) -> int:
    """How many different messages of ``size`` bytes a window sends in turn."""
    return max(VARIANTS, -(-VARIANT_BYTES // size))


# -- messages ----------------------------------------------------------------------------


def text_message(size: int, variant: int = 0) -> bytes:
    """``size`` bytes of JSON-ish ASCII: records of repeated keys, varying values."""
    rng = random.Random(size * 1000 + variant)
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


def message(kind: str, size: int, variant: int = 0) -> bytes:
    """The payload of a ``kind`` ("text" or "binary") message of ``size`` bytes; each
    ``variant`` is a different one."""
    if kind == "text":
        return text_message(size, variant)
    return random.Random(size * 1000 + variant).randbytes(size)


def messages(kind: str, size: int) -> list[bytes]:
    """The different messages a window sends in turn (:func:`variants`)."""
    return [message(kind, size, variant) for variant in range(variants(size))]


# -- servers (each in a subprocess) -------------------------------------------------------


def serve_websockets(listener: socket.socket) -> None:
    """Echo every message on websockets' threaded server, compression="deflate"."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import ServerConnection, serve

    def handler(ws: ServerConnection) -> None:
        # A client leaving without a Close is no handler failure: without this,
        # websockets logs its traceback.
        with contextlib.suppress(ConnectionClosed):
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


def serve_wsio_aio(listener: socket.socket) -> None:
    """Echo every message on ``wsio.aio.serve`` at its defaults."""
    import wsio.aio

    async def handler(ws: Any) -> None:
        async for msg in ws:
            await ws.send(msg)

    async def main() -> None:
        async with wsio.aio.serve(handler, sock=listener, max_message_size=None) as server:
            await server.serve_forever()

    asyncio.run(main())


def serve_wsio_sync(listener: socket.socket) -> None:
    """Echo every message on ``wsio.sync.serve`` at its defaults (a thread per connection)."""
    import wsio.sync

    def handler(ws: Any) -> None:
        for msg in ws:
            ws.send(msg)

    with wsio.sync.serve(handler, sock=listener, max_message_size=None) as server:
        server.serve_forever()


SERVE: dict[str, Callable[[socket.socket], None]] = {
    "websockets": serve_websockets,
    "aiohttp": serve_aiohttp,
    "wsio-aio": serve_wsio_aio,
    "wsio-sync": serve_wsio_sync,
}

#: Server name -> the command that starts it (it prints its port, or "listening on H:P").
SERVERS: dict[str, list[str]] = {
    name: [sys.executable, "-m", "bench.compressed_echo", "--serve", name] for name in SERVE
}
SERVERS["wsio-takeover"] = [
    *(sys.executable, "examples/wsflate_stream.py", "--port", "0", "--takeover"),
    *("--level", str(DEFAULT_LEVEL)),
]


# -- clients (in this process) -------------------------------------------------------------


class Client(Protocol):
    negotiated: str  # the server's Sec-WebSocket-Extensions answer

    def roundtrips(self, count: int) -> None: ...
    def check(self) -> None: ...
    def close(self) -> None: ...


class Turns:
    """The messages a client sends in turn, as the peer's API takes them, and the check
    that the last echo is the last message sent."""

    def __init__(self, kind: str, payloads: list[bytes], text_as_str: bool) -> None:
        as_str = kind == "text" and text_as_str
        self.payloads: list[Any] = [p.decode() if as_str else p for p in payloads]
        self.sent: Any = None
        self.last: Any = None
        self.turn = 0  # the next message: each call goes on where the last one stopped

    def check(self) -> None:
        assert self.last == self.sent, "the echo differs"


class BlockingTurns(Turns):
    """A client whose connection ``ws`` has blocking ``send`` and ``recv``."""

    ws: Any

    def roundtrips(self, count: int) -> None:
        ws, payloads = self.ws, self.payloads
        n = len(payloads)
        for i in range(self.turn, self.turn + count):
            self.sent = payloads[i % n]
            self.turn = i + 1
            ws.send(self.sent)
            self.last = ws.recv()


class WsioClient(BlockingTurns):
    """``wsio.sync.connect`` at its defaults (permessage-deflate offered, no takeover)."""

    def __init__(self, port: int, kind: str, payloads: list[bytes]) -> None:
        import wsio.sync

        super().__init__(kind, payloads, text_as_str=True)
        self.ws = wsio.sync.connect(f"ws://{HOST}:{port}/", proxy=None).open()
        assert self.ws.response is not None
        headers = self.ws.response.headers
        self.negotiated = next(
            (v for k, v in headers if k.lower() == "sec-websocket-extensions"),
            # The response's headers are not kept (wsio 0.1): what the codec says.
            "permessage-deflate" if self.ws.protocol.extensions else "",
        )

    def close(self) -> None:
        self.ws.close()


class WsioStreamClient(Turns):
    """wsio.dial with the wsflate offer; wsflate streams over wsutil Reader/Writer."""

    def __init__(self, port: int, kind: str, payloads: list[bytes], takeover: bool) -> None:
        import wsio
        from wsio import wsflate, wsutil

        super().__init__(kind, payloads, text_as_str=False)
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
        self.is_control = wsio.is_control

    def roundtrips(self, count: int) -> None:
        wr, fw, rd, fr, payloads = self.wr, self.fw, self.rd, self.fr, self.payloads
        n = len(payloads)
        for i in range(self.turn, self.turn + count):
            self.sent = payloads[i % n]
            self.turn = i + 1
            wr.reset_op(self.opcode)
            fw.reset(wr)
            fw.write(self.sent)
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
        super().check()

    def close(self) -> None:
        self.conn.close()


class WebsocketsClient(BlockingTurns):
    def __init__(self, port: int, kind: str, payloads: list[bytes]) -> None:
        from websockets.sync.client import connect

        super().__init__(kind, payloads, text_as_str=True)
        # Entered as a context manager, the form websockets 17.1+ asks for.
        self.ws = connect(f"ws://{HOST}:{port}/", compression="deflate", max_size=None)
        self.ws.__enter__()
        assert self.ws.response is not None
        self.negotiated = self.ws.response.headers.get("Sec-WebSocket-Extensions", "")

    def close(self) -> None:
        self.ws.__exit__(None, None, None)


class AiohttpClient(Turns):
    """ClientSession.ws_connect(compress=15), driven from a private event loop."""

    def __init__(self, port: int, kind: str, payloads: list[bytes]) -> None:
        import aiohttp

        super().__init__(kind, payloads, text_as_str=True)
        self.loop = asyncio.new_event_loop()

        async def connect() -> tuple[aiohttp.ClientSession, Any]:
            session = aiohttp.ClientSession()
            ws = await session.ws_connect(f"ws://{HOST}:{port}/", compress=15, max_msg_size=0)
            return session, ws

        self.session, self.ws = self.loop.run_until_complete(connect())
        self.negotiated = self.ws._response.headers.get("Sec-WebSocket-Extensions", "")

    async def _roundtrips(self, count: int) -> None:
        ws, payloads = self.ws, self.payloads
        n = len(payloads)
        send = ws.send_str if isinstance(payloads[0], str) else ws.send_bytes
        for i in range(self.turn, self.turn + count):
            self.sent = payloads[i % n]
            self.turn = i + 1
            await send(self.sent)
            self.last = (await ws.receive()).data

    def roundtrips(self, count: int) -> None:
        self.loop.run_until_complete(self._roundtrips(count))

    def close(self) -> None:
        async def close() -> None:
            await self.ws.close()
            await self.session.close()

        self.loop.run_until_complete(close())
        self.loop.close()


def _client(name: str, port: int, kind: str, payloads: list[bytes]) -> Client:
    if name == "wsio":
        return WsioClient(port, kind, payloads)
    if name == "wsio-takeover":
        return WsioStreamClient(port, kind, payloads, takeover=True)
    if name == "websockets":
        return WebsocketsClient(port, kind, payloads)
    return AiohttpClient(port, kind, payloads)


#: (server, client) pairs: each library on both ends, then the websockets client against
#: the wsio server.
PAIRS = [
    ("wsio-aio", "wsio"),
    ("wsio-sync", "wsio"),
    ("wsio-takeover", "wsio-takeover"),
    ("websockets", "websockets"),
    ("aiohttp", "aiohttp"),
    ("wsio-aio", "websockets"),
    ("wsio-aio", "aiohttp"),
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
    server: float  # the server's share of it


def window(client: str, port: int, pid: int, kind: str, size: int, seconds: float) -> Result:
    """One timed window on a new connection: round trips/s and CPU µs per round trip."""
    payloads = messages(kind, size)
    batch = max(VARIANTS, (64 << 10) // (size * 4))
    c = _client(client, port, kind, payloads)
    try:
        c.roundtrips(batch)  # warm-up, and the echo checked once
        c.check()
        count = 0
        client_cpu, server_cpu = time.process_time(), _cpu_seconds(pid)
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            c.roundtrips(batch)
            count += batch
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = _cpu_seconds(pid) - server_cpu
        c.check()
    finally:
        c.close()
    cpu = client_cpu + server_cpu
    return Result(count / elapsed, cpu / count * 1e6, server_cpu / count * 1e6)


Key = tuple[str, int, str, str]  # kind, size, server, client


def measure(pinned: bool, seconds: float, rounds: int) -> tuple[dict[Key, Result], dict[str, str]]:
    """The best of ``rounds`` windows for every message and pair, pairs taking turns;
    also each pair's negotiated extension."""
    best: dict[Key, Result] = {}
    negotiated: dict[str, str] = {}
    with _servers(pinned) as servers:
        for server, client in PAIRS:
            port, _ = servers[server]
            c = _client(client, port, "binary", [b"x"])
            negotiated[_pair(server, client)] = c.negotiated
            c.close()
        for _ in range(rounds):
            for kind in KINDS:
                for size in SIZES:
                    for server, client in PAIRS:
                        port, pid = servers[server]
                        r = window(client, port, pid, kind, size, seconds)
                        key = (kind, size, server, client)
                        if r.rate > best.get(key, Result(0.0, 0.0, 0.0)).rate:
                            best[key] = r
    return best, negotiated


# -- report ----------------------------------------------------------------------------------


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


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
    "wsio-aio ← wsio": f"the defaults: no takeover either way, 15 bits, level {DEFAULT_LEVEL}",
    "wsio-sync ← wsio": f"the defaults: no takeover either way, 15 bits, level {DEFAULT_LEVEL}",
    "wsio-takeover ↔ wsio-takeover": f"takeover both ways, 15 bits, level {DEFAULT_LEVEL}",
    "websockets ↔ websockets": "takeover both ways, 12 bits, level 6, memLevel 5",
    "aiohttp ↔ aiohttp": "takeover both ways, 15 bits, level 1; > 16 KiB compressed in a "
    "thread-pool executor",
    "wsio-aio ← websockets": f"server: no takeover, 15 bits, level {DEFAULT_LEVEL}; client: "
    "no takeover (told by the server), 12 bits",
    "wsio-aio ← aiohttp": f"server: no takeover, 15 bits, level {DEFAULT_LEVEL}; client: "
    "no takeover (told by the server), 15 bits, level 1",
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
        [
            "message",
            "server ← client",
            "round trips/s",
            "CPU µs/round trip",
            "server CPU µs",
            "wsio-aio ← wsio ÷ this",
        ],
    )
    summary = Table(
        f"wsio against the peers, {where} (round trips/s ratios, > 1: wsio is faster; "
        "CPU ratios, < 1: wsio uses less)",
        [
            "message",
            "wsio-aio ← wsio rt/s",
            "÷ websockets",
            "÷ aiohttp",
            "CPU ÷ websockets",
            "CPU ÷ aiohttp",
            "wsio-sync ÷ websockets",
            "wsio-sync ÷ aiohttp",
            "server CPU ÷ websockets (its client)",
            "server CPU ÷ aiohttp (its client)",
        ],
    )
    for kind in KINDS:
        for size in SIZES:
            label = f"{kind} {_size(size)}"
            wsio = results[(kind, size, "wsio-aio", "wsio")]
            sync = results[(kind, size, "wsio-sync", "wsio")]
            ws = results[(kind, size, "websockets", "websockets")]
            aio = results[(kind, size, "aiohttp", "aiohttp")]
            wsio_ws = results[(kind, size, "wsio-aio", "websockets")]
            wsio_aio = results[(kind, size, "wsio-aio", "aiohttp")]
            for server, client in PAIRS:
                r = results[(kind, size, server, client)]
                detail.rows.append(
                    [
                        label,
                        _pair(server, client),
                        _rate(r.rate),
                        f"{r.cpu:,.1f}",
                        f"{r.server:,.1f}",
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
                    _ratio(sync.rate, ws.rate),
                    _ratio(sync.rate, aio.rate),
                    _ratio(wsio_ws.server, ws.server),
                    _ratio(wsio_aio.server, aio.server),
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

    load = _load()
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
    # The machine is shared: its load during the run says how far to trust the rates.
    lines.insert(3, f"- load average (1, 5, 15 min) at the start: {load}, at the end: {_load()}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([*lines, *sections]))


if __name__ == "__main__":
    main()
